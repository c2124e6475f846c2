"""docker-compose.yml is a valid Compose file (compose-spec, offline), its references
resolve, its ports and hosts agree with the settings, the shared secrets must be given
(never a default) and reach only the processes using them, and the notifications worker
mails the local sink."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from compose_spec import PyCompose

from services.runtime.settings import SERVICE_PORTS, Settings
from tests.deploy.manifests import (
    PROCESSES,
    SECRET_USERS,
    Body,
    compose,
    compose_command,
    python_module,
    settings_from,
)

GIVEN_SECRETS = {name: f"test-{name.lower()}" for name in SECRET_USERS}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def _interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (unset or empty -> error)."""
    def one(match: re.Match[str]) -> str:
        name, kind, word = match.groups()
        if shell.get(name):
            return shell[name]
        if kind == "?":
            raise LookupError(f"{name}: {word}")
        return word if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def _environment(service: Body, shell: Mapping[str, str] = GIVEN_SECRETS) -> dict[str, str]:
    return {key: _interpolate(str(value), shell) for key, value in (service.get("environment") or {}).items()}


def _settings(service: Body) -> Settings:
    return settings_from(_environment(service))


def _mesh_services() -> dict[str, str]:
    """compose service name -> mesh process it runs (python -m services.<name>)."""
    found = {}
    for name, service in compose()["services"].items():
        module = python_module(compose_command(service))
        if module and module.removeprefix("services.") in PROCESSES:
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
        if mesh_service in SERVICE_PORTS:  # workers are called by no one
            assert hosts.get(mesh_service) == compose_name


def test_compose_runs_the_notifications_worker() -> None:
    assert "notifications" in _mesh_services().values()


@pytest.mark.parametrize("secret", sorted(SECRET_USERS))
def test_a_shared_secret_reaches_exactly_the_processes_that_use_it(secret: str) -> None:
    field = secret.removeprefix("COMMERCE_").lower()
    holders = set()
    for name, mesh_service in _mesh_services().items():
        value = _settings(compose()["services"][name]).model_dump()[field].get_secret_value()
        if value:
            assert value == GIVEN_SECRETS[secret], name
            holders.add(mesh_service)
    assert holders == SECRET_USERS[secret]
    others = [name for name in compose()["services"] if name not in _mesh_services()]
    assert [name for name in others if secret in (compose()["services"][name].get("environment") or {})] == []


@pytest.mark.parametrize("name", sorted(n for n, s in _mesh_services().items()
                                        if any(s in users for users in SECRET_USERS.values())))
def test_compose_refuses_to_start_a_process_whose_secret_is_not_given(name: str) -> None:
    service = compose()["services"][name]
    for secret in (s for s, users in SECRET_USERS.items() if _mesh_services()[name] in users):
        with pytest.raises(LookupError, match=secret):
            _environment(service, {k: v for k, v in GIVEN_SECRETS.items() if k != secret})
        with pytest.raises(LookupError, match=secret):  # empty counts as not given
            _environment(service, {**GIVEN_SECRETS, secret: ""})


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "SECRET" in key or key == "COMMERCE_SMTP_PASSWORD":
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key} must be ${{VAR:?...}}"


def test_notifications_mail_the_local_sink() -> None:
    services = compose()["services"]
    (worker,) = [n for n, s in _mesh_services().items() if s == "notifications"]
    settings = _settings(services[worker])
    sink = services[settings.smtp_host]
    command = compose_command(sink)
    assert command[:3] == ["python", "-m", "services.notifications.sink"]
    assert command[command.index("--port") + 1] == str(settings.smtp_port)
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from the worker's container
    assert not settings.smtp_starttls
    assert settings.smtp_host in services[worker]["depends_on"]


def test_envoy_waits_for_every_routed_service_to_be_healthy() -> None:
    (envoy,) = [s for s in compose()["services"].values() if "services.edge.render" in " ".join(compose_command(s))]
    by_service = {mesh_service: name for name, mesh_service in _mesh_services().items()}
    for routed in (*Settings().edge_services, "meshinfo"):
        assert envoy["depends_on"][by_service[routed]] == {"condition": "service_healthy"}, routed


def test_envoy_publishes_the_settings_port() -> None:
    (envoy,) = [s for s in compose()["services"].values() if "services.edge.render" in " ".join(compose_command(s))]
    port = _settings(envoy).envoy_port
    assert [str(p).rsplit(":", 1)[-1] for p in envoy["ports"]] == [str(port)]
    assert _settings(envoy).host == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_every_container_is_started_again_when_it_exits(name: str) -> None:
    """As under `make run`: a process that exits (crash, kill, a database restart it did not
    survive) comes back by itself; only `docker compose stop` keeps it down."""
    restart = compose()["services"][name].get("restart")
    # the one-shot migration step runs once before the services (its failure stops the start)
    assert restart == "no" if name == "migrate" else restart in ("always", "unless-stopped"), name


def test_no_deployment_switches_on_the_sandbox_outage_of_the_chaos_run() -> None:
    """COMMERCE_PAYMENT_SANDBOX_OUTAGE_FILE exists for tests and `python -m bench chaos` only."""
    root = Path(__file__).resolve().parents[2]
    for path in [root / "docker-compose.yml", *sorted((root / "deploy").rglob("*.yaml"))]:
        assert "SANDBOX_OUTAGE" not in path.read_text(), path


def test_every_long_running_container_has_a_healthcheck_and_dependents_wait_for_it() -> None:
    services = compose()["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"migrate"}
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dependency in one_shot else "service_healthy"
            assert condition == {"condition": wanted}, (name, dependency)
