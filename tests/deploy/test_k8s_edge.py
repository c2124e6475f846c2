"""The Envoy Deployment works as written: its config, rendered from the ConfigMap, passes
`envoy --mode validate` with the Deployment's own flags; each service is a STRICT_DNS
cluster on its headless Service; and its readiness probe and preStop drain do what they
say against a real Envoy."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.edge.render import JWKS_CLUSTER, config
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.deploy.manifests import ROOT, Body, configmap_env, environment, find, pod_spec, settings_from

BIN = Path(sys.executable).parent
RENDERED = "/tmp/envoy.yaml"


def _envoy_container() -> Body:
    container: Body = pod_spec(find("Deployment", "envoy"))["containers"][0]
    return container


def _start_commands() -> tuple[list[str], list[str]]:
    """The Deployment's two steps: render the config, then exec Envoy on it."""
    command = _envoy_container()["command"]
    assert command[:2] == ["sh", "-c"]
    render, start = (shlex.split(part) for part in command[2].split("&&"))
    assert render[:3] == ["python", "-m", "services.edge.render"]
    assert start[:2] == ["exec", "envoy"]
    assert render[render.index("--out") + 1] == start[start.index("-c") + 1] == RENDERED
    return render, start[1:]


def _process_env(settings_env: dict[str, str]) -> dict[str, str]:
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **settings_env}


def _render(settings_env: dict[str, str], out: Path) -> list[str]:
    """Runs the render step as the pod does; returns the Envoy command, -c pointing at ``out``."""
    render, envoy = _start_commands()
    render = [sys.executable, *render[1:]]
    render[render.index("--out") + 1] = str(out)
    subprocess.run(render, env=_process_env(settings_env), cwd=ROOT, check=True, capture_output=True, timeout=60)
    envoy[envoy.index("-c") + 1] = str(out)
    return [str(BIN / "envoy"), *envoy[1:]]


def test_config_rendered_from_the_configmap_passes_envoy_validate_with_the_deployment_flags(tmp_path: Path) -> None:
    envoy = _render(configmap_env(), tmp_path / "envoy.yaml")
    assert "--disable-hot-restart" in envoy
    result = subprocess.run([*envoy, "--mode", "validate"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_each_service_cluster_is_strict_dns_on_its_headless_service() -> None:
    settings = settings_from(configmap_env())
    with environment(configmap_env()):
        clusters = [c for c in config(settings)["static_resources"]["clusters"] if c["name"] != JWKS_CLUSTER]
    assert {*settings.edge_services, "meshinfo"} <= {c["name"] for c in clusters}
    for cluster in clusters:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        service = find("Service", address["address"])
        assert cluster["type"] == "STRICT_DNS", cluster["name"]
        assert service["spec"]["clusterIP"] == "None", cluster["name"]
        assert address["port_value"] in [p["port"] for p in service["spec"]["ports"]]


def _with_admin_port(command: list[str], default: int, port: int) -> list[str]:
    words = [word.replace(f"127.0.0.1:{default}/", f"127.0.0.1:{port}/") for word in command]
    return [sys.executable if word == "python" else word for word in words]


@pytest.fixture
def running_envoy(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A real Envoy started as the pod starts it (backends on unused local ports)."""
    admin = free_port()
    services = (*settings_from(configmap_env()).edge_services, "meshinfo")
    env = {**configmap_env(), "COMMERCE_ENVOY_PORT": str(free_port()), "COMMERCE_ENVOY_ADMIN_PORT": str(admin),
           "COMMERCE_SERVICE_HOSTS": json.dumps(dict.fromkeys(services, "127.0.0.1")),
           **{f"COMMERCE_{name.upper()}_PORT": str(free_port()) for name in services},
           "COMMERCE_MESHINFO_CHECK_PORT": str(free_port())}
    envoy = _render(env, tmp_path / "envoy.yaml")
    log = (tmp_path / "envoy.log").open("w")
    process = subprocess.Popen(envoy, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        yield admin, _process_env(env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _run(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=30, check=False).returncode


def test_readiness_probe_passes_once_envoy_serves_and_fails_after_the_prestop_drain(
        running_envoy: tuple[int, dict[str, str]]) -> None:
    admin, env = running_envoy
    default_admin = settings_from(configmap_env()).envoy_admin_port
    container = _envoy_container()
    ready = _with_admin_port(container["readinessProbe"]["exec"]["command"], default_admin, admin)
    pre_stop = _with_admin_port(container["lifecycle"]["preStop"]["exec"]["command"], default_admin, admin)
    pre_stop = [re.sub(r"\bsleep \d+", "sleep 0", word) for word in pre_stop]

    deadline = time.monotonic() + 20
    while _run(ready, env) != 0:
        assert time.monotonic() < deadline, "Envoy never became ready"
        time.sleep(0.2)
    assert _run(pre_stop, env) == 0
    assert _run(ready, env) != 0, "a draining Envoy must leave the Service's endpoints"


def _configmap_settings() -> Settings:
    return settings_from(configmap_env())


def test_production_edge_limits_replace_the_test_sized_defaults() -> None:
    settings, defaults = _configmap_settings(), Settings()
    for name in ("user", "tenant", "anonymous"):
        for kind in ("per_second", "burst"):
            field = f"ratelimit_{name}_{kind}"
            assert getattr(settings, field) < getattr(defaults, field) / 10, field
    assert settings.edge_xff_trusted_hops == 1  # behind the Ingress / L7 load balancer deploy/README.md names


def test_server_streams_have_clusters_of_their_own_and_every_cluster_explicit_breakers() -> None:
    settings = _configmap_settings()
    with environment(configmap_env()):
        rendered = config(settings)
    clusters = {c["name"]: c for c in rendered["static_resources"]["clusters"]}
    for cluster in clusters.values():
        (thresholds,) = cluster["circuit_breakers"]["thresholds"]
        assert {"max_connections", "max_pending_requests", "max_requests", "max_retries"} <= set(thresholds)
    assert clusters["order"]["circuit_breakers"]["thresholds"][0]["max_requests"] == settings.edge_max_requests
    assert clusters["order-streams"]["circuit_breakers"]["thresholds"][0]["max_requests"] == settings.edge_max_streams
    routes = rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    watch = next(r for r in routes if r["match"].get("path") == "/commerce.order.v1.OrderService/WatchOrder")
    assert watch["route"]["cluster"] == "order-streams"
    unary = next(r for r in routes if r["match"].get("prefix") == "/commerce.order.v1.OrderService/")
    assert unary["route"]["cluster"] == "order"
