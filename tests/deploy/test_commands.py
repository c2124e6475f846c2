"""Every `python -m ...` that docker-compose.yml and the Kubernetes manifests run names a
module of this repository. Only services a later issue brings may be missing (skipped,
by name); any other missing module is a mistake."""

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

NOT_WRITTEN_YET = {"services.cart", "services.order", "services.payment"}


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


def test_the_deployment_files_run_the_mesh_processes() -> None:
    assert {"services.tenant", "services.catalog", "services.meshinfo", "services.edge.render",
            "services.runtime.healthcheck"} <= set(_commands())


@pytest.mark.parametrize("module", sorted(_commands()))
def test_each_module_run_exists(module: str) -> None:
    if module_file(module) is None:
        if module in NOT_WRITTEN_YET:
            pytest.skip(f"{module} is not written yet (run by {', '.join(_commands()[module])})")
        pytest.fail(f"no module {module}, run by {', '.join(_commands()[module])}")
