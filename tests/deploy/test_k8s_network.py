"""NetworkPolicies: default deny, then exactly the paths the architecture draws (README,
"Architecture"; deploy/README.md, "Network policies"). A small evaluator reads the policies the
way Kubernetes does (a connection needs the source's egress and the destination's ingress to
allow it; pods are matched by their template labels) and checks the paths the mesh needs are
open, with the ports of the settings, and a set of paths it must not have are closed."""

from __future__ import annotations

from typing import Any

import pytest

from services.runtime.budget import DATABASE_SERVICES
from services.runtime.settings import Settings
from tests.deploy.manifests import Body, configmap_env, of_kind, pod_labels, settings_from, workloads

EXTERNAL = "external"  # PostgreSQL, the mail server: outside the cluster
MIGRATE_LABELS = {"app.kubernetes.io/name": "migrate"}


def _settings() -> Settings:
    return settings_from(configmap_env())


def _labels(name: str) -> dict[str, str]:
    if name == "migrate":
        return MIGRATE_LABELS
    for workload in workloads():
        if workload["metadata"]["name"] == name:
            return pod_labels(workload)
    raise AssertionError(f"no workload {name}")


def _matches(selector: Body, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_allows(peers: list[Body] | None, labels: dict[str, str] | None) -> bool:
    if not peers:  # no `from`/`to`: every peer
        return True
    for peer in peers:
        if labels is None:
            if "ipBlock" in peer:
                return True
            continue
        if "ipBlock" in peer or "namespaceSelector" in peer:
            continue  # other namespaces and addresses outside the cluster, not our pods
        if _matches(peer["podSelector"], labels):
            return True
    return False


def _rules_allow(rules: list[Body], labels: dict[str, str] | None, port: int, key: str) -> bool:
    for rule in rules:
        ports = rule.get("ports")
        if ports and not any(p["port"] == port for p in ports):
            continue
        if _peer_allows(rule.get(key), labels):
            return True
    return False


def _allowed(direction: str, pod: dict[str, str], peer: dict[str, str] | None, port: int) -> bool:
    key, rules_key = ("to", "egress") if direction == "Egress" else ("from", "ingress")
    selecting = [p["spec"] for p in of_kind("NetworkPolicy") if _matches(p["spec"]["podSelector"], pod)
                 and direction in p["spec"]["policyTypes"]]
    return any(_rules_allow(spec.get(rules_key, []), peer, port, key) for spec in selecting)


def connects(source: str, target: str, port: int) -> bool:
    src = _labels(source)
    if target == EXTERNAL:
        return _allowed("Egress", src, None, port)
    dst = _labels(target)
    return _allowed("Egress", src, dst, port) and _allowed("Ingress", dst, src, port)


def _needed() -> list[tuple[str, str, int]]:
    settings = _settings()
    paths = [("envoy", s, settings.port_of(s)) for s in (*settings.edge_services, "meshinfo")]
    paths.append(("envoy", "meshinfo", settings.meshinfo_check_port))
    paths += [(s, "tenant", settings.port_of("tenant")) for s in ("catalog", "cart", "order", "payment")]
    paths += [("tenant", s, settings.port_of(s)) for s in settings.provision_services]
    paths += [("order", s, settings.port_of(s)) for s in ("cart", "catalog", "payment")]
    paths.append(("cart", "catalog", settings.port_of("catalog")))
    paths += [("meshinfo", s, settings.port_of(s)) for s in settings.edge_services]
    for service in DATABASE_SERVICES:
        paths += [(service, "pgbouncer", 6432), (service, EXTERNAL, 5432), (service, "nats", 4222)]
    paths += [("pgbouncer", EXTERNAL, 5432), ("nats", "nats", 6222), ("migrate", EXTERNAL, 5432),
              ("notifications", EXTERNAL, settings.smtp_port)]
    return paths


FORBIDDEN = [
    ("cart", "payment", 15055), ("catalog", "order", 15054), ("payment", "catalog", 15052),
    ("notifications", "tenant", 15051), ("envoy", "pgbouncer", 6432), ("envoy", "nats", 4222),
    ("catalog", "nats", 6222), ("order", "nats", 8222), ("envoy", "nats", 8222), ("pgbouncer", "nats", 4222),
    ("migrate", "nats", 4222), ("envoy", EXTERNAL, 5432), ("meshinfo", EXTERNAL, 5432), ("cart", EXTERNAL, 587),
    ("meshinfo", "pgbouncer", 6432), ("envoy", "notifications", 15056),
]


def test_everything_is_denied_unless_a_policy_allows_it() -> None:
    (deny,) = [p for p in of_kind("NetworkPolicy") if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize(("source", "target", "port"), _needed(), ids=lambda v: str(v))
def test_a_path_the_mesh_needs_is_open(source: str, target: str, port: int) -> None:
    assert connects(source, target, port)


@pytest.mark.parametrize(("source", "target", "port"), FORBIDDEN, ids=lambda v: str(v))
def test_a_path_the_architecture_does_not_draw_is_closed(source: str, target: str, port: int) -> None:
    assert not connects(source, target, port)


def test_clients_reach_only_envoy_from_outside() -> None:
    outside: dict[str, Any] = {"app.kubernetes.io/name": "someone-else"}
    assert _allowed("Ingress", _labels("envoy"), outside, _settings().envoy_port)
    for workload in workloads():
        name = workload["metadata"]["name"]
        if name != "envoy":
            for port in (15050, 15051, 15052, 15053, 15054, 15055, 15056, 6432, 4222):
                assert not _allowed("Ingress", pod_labels(workload), outside, port), (name, port)


def _from_monitoring(peers: list[Body]) -> bool:
    return any(p.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}
               for p in peers)


@pytest.mark.parametrize("workload", [w["metadata"]["name"] for w in workloads()])
def test_every_pod_may_send_spans_to_the_collector_and_be_scraped_from_monitoring(workload: str) -> None:
    """Traces leave for the OTLP collector in `monitoring` (4318), and Prometheus there reaches
    the pod's metrics port (Envoy: its stats on 9902): default deny would drop both silently."""
    labels = _labels(workload)
    policies = [p["spec"] for p in of_kind("NetworkPolicy") if _matches(p["spec"]["podSelector"], labels)]
    assert any(_from_monitoring(rule.get("to", [])) and any(p["port"] == 4318 for p in rule.get("ports", []))
               for spec in policies if "Egress" in spec["policyTypes"] for rule in spec.get("egress", []))
    (workload_body,) = [w for w in workloads() if w["metadata"]["name"] == workload]
    annotations = workload_body["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        port = int(annotations["prometheus.io/port"])
        assert any(_from_monitoring(rule.get("from", [])) and any(p["port"] == port for p in rule.get("ports", []))
                   for spec in policies if "Ingress" in spec["policyTypes"] for rule in spec.get("ingress", []))
