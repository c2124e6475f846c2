"""docker-compose.yml is a valid Compose file (compose-spec, offline), its references
resolve, and its ports and hosts agree with the settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from compose_spec import PyCompose

from services.runtime.settings import SERVICE_PORTS, Settings
from tests.deploy.manifests import Body, compose, compose_command, python_module, settings_from


def _settings(service: Body) -> Settings:
    return settings_from({key: str(value) for key, value in service.get("environment", {}).items()})


def _mesh_services() -> dict[str, str]:
    """compose service name -> mesh service it runs (python -m services.<name>)."""
    found = {}
    for name, service in compose()["services"].items():
        module = python_module(compose_command(service))
        if module and module.removeprefix("services.") in SERVICE_PORTS:
            found[name] = module.removeprefix("services.")
    return found


def test_compose_file_is_valid_per_the_compose_spec() -> None:
    # Merge keys (<<: *service) are resolved by the YAML loader first, as Compose does.
    parsed = PyCompose.from_json(json.dumps(compose()))
    parsed.validate()
    parsed.to_spec()
    assert set(parsed.service_names()) == set(compose()["services"])


@pytest.mark.parametrize("broken", [{"restart": "sometimes"}, {"ports": ["eighty:80"]}, {"imag": "x"}])
def test_compose_spec_validation_rejects_a_broken_service(broken: dict[str, Any]) -> None:
    body = {"services": {"web": {"image": "nginx", **broken}}}
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps(body)).to_spec()


def test_every_dependency_and_named_volume_is_defined() -> None:
    services = compose()["services"]
    volumes = set(compose().get("volumes") or {})
    for name, service in services.items():
        assert set(service.get("depends_on") or {}) <= set(services), name
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source and not source.startswith((".", "/", "$")):
                assert source in volumes, f"{name}: volume {source} is not declared"


def test_compose_runs_the_routed_services_and_meshinfo() -> None:
    settings = Settings()
    assert {*settings.edge_services, "meshinfo"} <= set(_mesh_services().values())


@pytest.mark.parametrize("name", sorted(_mesh_services()))
def test_healthcheck_probes_the_settings_port(name: str) -> None:
    service = compose()["services"][name]
    mesh_service = _mesh_services()[name]
    test = service["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "services.runtime.healthcheck"]
    assert test[4] == f"127.0.0.1:{_settings(service).port_of(mesh_service)}"
    if mesh_service == "meshinfo":  # "" would be the whole mesh: meshinfo answers its own name itself
        assert test[5:] == ["grpc.health.v1.Health"]


@pytest.mark.parametrize("name", sorted(_mesh_services()))
def test_every_process_reaches_each_service_by_its_compose_name(name: str) -> None:
    hosts = _settings(compose()["services"][name]).service_hosts
    for compose_name, mesh_service in _mesh_services().items():
        assert hosts.get(mesh_service) == compose_name


def test_envoy_publishes_the_settings_port() -> None:
    (envoy,) = [s for s in compose()["services"].values() if "services.edge.render" in " ".join(compose_command(s))]
    port = _settings(envoy).envoy_port
    assert [str(p).rsplit(":", 1)[-1] for p in envoy["ports"]] == [str(port)]
    assert _settings(envoy).host == "0.0.0.0"
