"""The Kubernetes workloads agree with the settings (ports, health names, hosts) and are
run the way the README promises: several replicas, budgets for disruptions, graceful
shutdown, restricted pods."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.edge.descriptors import edge_services, load_descriptor_set
from services.edge.render import descriptor_file
from services.runtime.health import LIVENESS
from services.runtime.settings import SERVICE_PORTS, Settings
from tests.deploy.manifests import (
    PROCESSES,
    WORKERS,
    Body,
    configmap_env,
    find,
    modules_of,
    of_kind,
    pod_labels,
    pod_spec,
    python_module,
    selects,
    settings_from,
    workloads,
)

MESH_HEALTH = "grpc.health.v1.Health"  # meshinfo answers this name itself
AUTOSCALED = {"tenant", "catalog", "cart", "order", "payment", "envoy"}
# Measured by `python -m bench.passwords` (argon2-cffi defaults): resident memory of a process
# with the tenant service's modules loaded, and what each concurrent hash adds at its peak.
TENANT_BASE_MIB, MIB_PER_HASH = 106, 64
SERVING_MARGIN_MIB = 128  # pools, gRPC buffers, caches of a serving process
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _settings() -> Settings:
    return settings_from({**configmap_env(), "DATABASE_URL": "postgresql://x@db/postgres"})


def _service_deployments() -> dict[str, Body]:
    """mesh process name -> the Deployment running `python -m services.<name>`."""
    found = {}
    for deployment in of_kind("Deployment"):
        module = python_module(pod_spec(deployment)["containers"][0]["command"])
        if module and module.removeprefix("services.") in PROCESSES:
            found[module.removeprefix("services.")] = deployment
    return found


def _health_names(settings: Settings) -> dict[str, str]:
    """The name each process's readiness probe asks: its gRPC service's (whether or not the
    edge routes it yet), meshinfo's own, and the overall "" of a worker."""
    owners = tuple(name for name in _service_deployments() if name in SERVICE_PORTS and name != "meshinfo")
    services = edge_services(load_descriptor_set(descriptor_file(settings)), owners)
    return {s.owner: s.health_name for s in services} | {"meshinfo": MESH_HEALTH} | dict.fromkeys(WORKERS, "")


def _host(settings: Settings, name: str) -> str:
    """Where the others reach a process: its COMMERCE_SERVICE_HOSTS entry; a worker (called by
    no one) by its own name."""
    return name if name in WORKERS else settings.service_hosts[name]


def _extra_ports(settings: Settings) -> dict[str, dict[str, int]]:
    """Ports beside gRPC that Envoy reaches on a service's pods."""
    return {"meshinfo": {"check": settings.meshinfo_check_port}}


def _port(container: Body, name: str) -> int | None:
    return next((p["containerPort"] for p in container.get("ports", []) if p["name"] == name), None)


def _probe_port(probe: Body) -> Any:
    kind = next(k for k in ("grpc", "tcpSocket", "httpGet", "exec") if k in probe)
    return None if kind == "exec" else probe[kind]["port"]


def test_the_settings_configmap_names_only_real_settings() -> None:
    fields = {f"COMMERCE_{name.upper()}" for name in Settings.model_fields} | {"NATS_URL"} | {
        name.upper() for name in Settings.model_fields if name.startswith("otel_")}  # OpenTelemetry's own names
    assert sorted(set(configmap_env()) - fields) == []
    settings = _settings()
    assert settings.host == "0.0.0.0"
    assert settings.log_format == "json"


def test_a_deployment_runs_every_mesh_process() -> None:
    assert sorted(set(PROCESSES) - set(_service_deployments())) == []


@pytest.mark.parametrize("service", sorted(_service_deployments()))
def test_service_container_listens_and_is_probed_on_its_settings_port(service: str) -> None:
    settings = _settings()
    port = settings.port_of(service)
    container = pod_spec(_service_deployments()[service])["containers"][0]
    assert _port(container, "grpc") == port
    probes = {name: container[name] for name in PROBES if name in container}
    assert {"readinessProbe", "livenessProbe"} <= set(probes)
    assert {name: _probe_port(p) for name, p in probes.items()} == dict.fromkeys(probes, port)
    readiness = probes["readinessProbe"]["grpc"]
    assert (readiness["port"], readiness.get("service", "")) == (port, _health_names(settings)[service])
    assert set(readiness) <= {"port", "service"}


@pytest.mark.parametrize("service", sorted(set(_service_deployments()) - {"meshinfo"}))
def test_liveness_asks_the_heartbeat_name_over_grpc_not_the_database(service: str) -> None:
    """A TCP connect succeeds while the event loop is stuck; the readiness name follows the
    database (an outage must not restart every pod). `liveness` is neither."""
    container = pod_spec(_service_deployments()[service])["containers"][0]
    assert container["livenessProbe"]["grpc"] == {"port": _settings().port_of(service), "service": LIVENESS}
    # Long enough for the heartbeat's stall limit to be seen, short enough to act on it.
    probe = container["livenessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] > _settings().liveness_stall_seconds


@pytest.mark.parametrize("service", sorted(_service_deployments()))
def test_metrics_port_is_the_grpc_port_plus_the_settings_offset(service: str) -> None:
    settings = _settings()
    deployment = _service_deployments()[service]
    metrics = _port(pod_spec(deployment)["containers"][0], "metrics")
    if service == "meshinfo":  # serves no metrics (services/meshinfo/server.py)
        assert metrics is None
        return
    assert metrics == settings.port_of(service) + settings.metrics_port_offset
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(metrics)


@pytest.mark.parametrize("service", sorted(_service_deployments()))
def test_service_hosts_point_at_a_headless_service_selecting_its_pods(service: str) -> None:
    settings = _settings()
    svc = find("Service", _host(settings, service))
    assert svc["spec"]["clusterIP"] == "None", "Envoy's STRICT_DNS needs pod IPs, not one virtual IP"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"grpc": settings.port_of(service)} | _extra_ports(settings).get(service, {})
    container = pod_spec(_service_deployments()[service])["containers"][0]
    assert {name: _port(container, name) for name in ports} == ports
    assert selects(svc["spec"]["selector"], pod_labels(_service_deployments()[service]))


def test_every_service_the_edge_routes_is_deployed() -> None:
    settings = _settings()
    assert set(settings.edge_services) | {"meshinfo"} <= set(_service_deployments())
    assert set(json.loads(configmap_env()["COMMERCE_SERVICE_HOSTS"])) == set(SERVICE_PORTS)


def test_envoy_listens_and_is_served_on_the_settings_port() -> None:
    port = _settings().envoy_port
    deployment = find("Deployment", "envoy")
    container = pod_spec(deployment)["containers"][0]
    assert _port(container, "http") == port
    assert _probe_port(container["livenessProbe"]) == port
    assert f"127.0.0.1:{_settings().envoy_admin_port}/ready" in " ".join(container["readinessProbe"]["exec"]["command"])
    service = find("Service", "envoy")
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    assert selects(service["spec"]["selector"], pod_labels(deployment))


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_each_deployment_runs_at_least_two_replicas(deployment: Body) -> None:
    name = deployment["metadata"]["name"]
    hpas = [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
    if name in AUTOSCALED:
        assert len(hpas) == 1
        assert hpas[0]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpas[0]["spec"]["minReplicas"] >= 2
        assert hpas[0]["spec"]["maxReplicas"] > hpas[0]["spec"]["minReplicas"]
        assert "replicas" not in deployment["spec"], "the HPA owns replicas; apply would reset them"
    else:
        assert hpas == []
        assert deployment["spec"]["replicas"] >= 2


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_each_workload_has_a_disruption_budget_leaving_pods_up(workload: Body) -> None:
    labels = pod_labels(workload)
    budgets = [b for b in of_kind("PodDisruptionBudget") if selects(b["spec"]["selector"]["matchLabels"], labels)]
    assert len(budgets) == 1
    assert budgets[0]["spec"] == {"maxUnavailable": 1, "selector": budgets[0]["spec"]["selector"]}
    assert selects(workload["spec"]["selector"]["matchLabels"], labels)


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pods_meet_the_restricted_pod_security_standard(workload: Body) -> None:
    spec = pod_spec(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"] + spec.get("initContainers", []):
        context = container["securityContext"]
        assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                           "capabilities": {"drop": ["ALL"]}}, container["name"]
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, container["name"]
    if spec["containers"][0]["image"] in ("commerce-mesh", "commerce-mesh-edge"):
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_pods_drain_before_they_stop_and_get_time_to_finish(deployment: Body) -> None:
    spec = pod_spec(deployment)
    container = spec["containers"][0]
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    found = re.search(r"\bsleep (\d+)", pre_stop)
    assert found, f"preStop does not sleep: {pre_stop}"
    sleep = int(found.group(1))
    assert sleep >= 5
    # Envoy and PgBouncer close at once on SIGTERM: the sleep is their drain.
    modules = modules_of(container["command"])
    immediate = not modules or modules[0] == "services.edge.render"
    after_sigterm = 0 if immediate else _settings().shutdown_grace_seconds
    assert spec["terminationGracePeriodSeconds"] >= sleep + after_sigterm


def test_tenant_reads_its_signing_keys_from_the_secret_copied_to_a_memory_volume() -> None:
    spec = pod_spec(find("Deployment", "tenant"))
    (init,) = spec["initContainers"]
    container = spec["containers"][0]
    keys_dir = {e["name"]: e.get("value") for e in container["env"]}["COMMERCE_KEYS_DIR"]
    assert {e["name"]: e.get("value") for e in init["env"]}["COMMERCE_KEYS_DIR"] == keys_dir
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    keys_volume = next(name for name, path in mounts.items() if keys_dir.startswith(path + "/"))
    assert volumes[keys_volume]["emptyDir"]["medium"] == "Memory"
    secret_mount = next(m for m in init["volumeMounts"] if "secret" in volumes[m["name"]])
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == "commerce-signing-keys"
    assert f"{secret_mount['mountPath']}/*.pem" in init["command"][2]


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_container_is_restarted_when_it_exits_or_stops_answering(workload: Body) -> None:
    """As under `make run`: the kubelet restarts a container that exits (restartPolicy Always, with
    its own back-off) or whose liveness probe fails; liveness never asks the database, so a
    database outage does not restart every pod (readiness takes them out of the endpoints)."""
    spec = pod_spec(workload)
    assert spec.get("restartPolicy", "Always") == "Always"
    for container in spec["containers"]:
        probe = container["livenessProbe"]
        # a service's own names follow its database: liveness asks the event loop's heartbeat
        # (health name `liveness`); meshinfo answers MESH_HEALTH itself
        assert "grpc" not in probe or probe["grpc"].get("service", "") in (LIVENESS, MESH_HEALTH), container["name"]


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_tenant_memory_limit_fits_the_hashing_cap_measured() -> None:
    settings = _settings()
    container = pod_spec(_service_deployments()["tenant"])["containers"][0]
    limit = _mebibytes(container["resources"]["limits"]["memory"])
    needed = TENANT_BASE_MIB + settings.login_hash_concurrency * MIB_PER_HASH + SERVING_MARGIN_MIB
    assert limit >= needed, f"{limit} MiB < {needed} MiB for {settings.login_hash_concurrency} hashes at once"
    assert settings.login_hash_concurrency == 2  # the figure tenant.yaml's comment and deploy/README.md give
