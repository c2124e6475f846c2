"""Every `python -m ...` that docker-compose.yml and the Kubernetes manifests run names a
module of this repository, and both run every process of the mesh."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    compose,
    compose_command,
    module_file,
    modules_of,
    pod_spec,
    python_module,
    workloads,
)

MESH_PROCESSES = {"services.tenant", "services.catalog", "services.cart", "services.order", "services.payment",
                  "services.notifications", "services.meshinfo", "services.edge.render"}
# Compose also runs a local mail sink and probes with a command (Kubernetes probes gRPC natively).
COMPOSE_ONLY = {"services.notifications.sink", "services.runtime.healthcheck"}


def _commands() -> dict[str, list[str]]:
    """module -> where it is run."""
    found: dict[str, list[str]] = {}

    def add(command: list[str], where: str) -> None:
        for module in modules_of(command):
            found.setdefault(module, []).append(where)

    for name, service in compose()["services"].items():
        add(compose_command(service), f"docker-compose.yml service {name}")
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"]:
            add(test[1:], f"docker-compose.yml healthcheck of {name}")
    for workload in workloads():
        spec = pod_spec(workload)
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"deploy/k8s {workload['kind']}/{workload['metadata']['name']} container {container['name']}"
            add(container.get("command", []), where)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                exec_command = container.get(probe, {}).get("exec", {}).get("command")
                if exec_command and python_module(exec_command):
                    add(exec_command, f"{where} {probe}")
    return found


def _run_in(prefix: str) -> set[str]:
    return {module for module, places in _commands().items() if any(p.startswith(prefix) for p in places)}


@pytest.mark.parametrize("where", ["docker-compose.yml", "deploy/k8s"])
def test_the_deployment_files_run_every_mesh_process(where: str) -> None:
    assert sorted(MESH_PROCESSES - _run_in(where)) == []


def test_compose_runs_the_local_smtp_sink_and_the_healthcheck_command() -> None:
    assert sorted(COMPOSE_ONLY - _run_in("docker-compose.yml")) == []


@pytest.mark.parametrize("module", sorted(_commands()))
def test_each_module_run_exists(module: str) -> None:
    assert module_file(module) is not None, f"no module {module}, run by {', '.join(_commands()[module])}"
