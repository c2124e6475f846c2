"""The views that ship (Grafana dashboard, Prometheus alert rules and scrape configs) name only
metrics the real mesh serves, in expressions Prometheus can parse."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

from services.devmesh.mesh import NOTIFICATIONS, ROOT
from services.runtime.settings import SERVICE_PORTS, Settings
from tests.e2e.harness import confirmed_order, new_customer, stocked_product
from tests.observability.conftest import Traced

OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = ROOT / "deploy" / "k8s" / "observability" / "alerts.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "commerce-mesh.json"
# Names Prometheus itself makes (not served by a target).
SYNTHETIC = {"up"}
# A sample line of the text exposition format: its metric name.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _named() -> dict[str, set[str]]:
    """Every metric the views name, and where."""
    named: dict[str, set[str]] = {}
    for expr in _dashboard_exprs():
        for name in _metric_names(expr):
            named.setdefault(name, set()).add("dashboard")
    for rule in _rules():
        for name in _metric_names(rule["expr"]):
            named.setdefault(name, set()).add(f"rule {rule['alert']}")
    return named


@pytest.mark.parametrize("expr", [*_dashboard_exprs(), *(rule["expr"] for rule in _rules())])
def test_every_expression_of_the_dashboard_and_the_rules_parses(expr: str) -> None:
    assert _metric_names(expr), f"{expr} names no metric"


def test_a_broken_expression_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(commerce_rpc_total[5m])")


def test_every_rule_alerts_after_a_while_and_says_what_happened() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {"OutboxBacklogGrowing", "ConsumerStuck", "DeadLetters", "SagaStuck",
                                           "HealthNotServing", "EdgeServerErrors"}
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["annotations"]["summary"], rule["alert"]


def test_the_readme_says_what_each_alert_means_and_what_to_do() -> None:
    operating = (ROOT / "README.md").read_text().split("## Operating it", 1)[1].split("\n## ", 1)[0]
    assert [r["alert"] for r in _rules() if f"`{r['alert']}`" not in operating] == []


def test_grafana_is_provisioned_with_the_dashboard_and_both_data_sources() -> None:
    provisioning = OBSERVABILITY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())["datasources"]
    assert {(s["uid"], s["type"]) for s in sources} == {("prometheus", "prometheus"), ("jaeger", "jaeger")}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert used == {"prometheus"}
    provider = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = {inside: host for host, inside, _ in (volume.split(":") for volume in compose["grafana"]["volumes"])}
    assert (ROOT / mounts[provider["options"]["path"]].removeprefix("./")) == DASHBOARD.parent
    titles = [panel["title"] for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(titles) == len(set(titles))


def test_compose_prometheus_scrapes_every_process_that_serves_metrics_and_envoy() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for c in jobs["commerce"]["static_configs"] for t in c["targets"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    offset = int(compose["order"]["environment"]["COMMERCE_METRICS_PORT_OFFSET"])
    ports = {**SERVICE_PORTS, NOTIFICATIONS: Settings().notifications_port}
    assert targets == {f"{name}:{ports[name] + offset}" for name in (*Settings().edge_services, NOTIFICATIONS)}
    envoy_port = compose["envoy"]["environment"]["COMMERCE_ENVOY_METRICS_PORT"]
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert [t for c in jobs["envoy"]["static_configs"] for t in c["targets"]] == [f"envoy:{envoy_port}"]
    assert Path(config["rule_files"][0]).name == RULES.name


def _scrape(traced: Traced) -> str:
    mesh = traced.mesh
    urls = [mesh.metrics_url(name) for name in (*mesh.services, *mesh.workers)]
    urls.append(f"http://127.0.0.1:{mesh.settings.envoy_metrics_port}/stats/prometheus")
    texts = []
    for url in urls:
        assert url is not None
        reply = httpx.get(url, timeout=10)
        assert reply.status_code == 200, url
        texts.append(reply.text)
    return "\n".join(texts)


def test_every_metric_the_views_name_is_in_a_scrape_of_the_real_mesh(traced: Traced) -> None:
    buyer = new_customer(traced.rest, traced.shop)
    confirmed_order(traced.rest, buyer, stocked_product(traced.rest, traced.shop.seller, on_hand=3))
    named = _named()
    deadline = time.monotonic() + 20  # gauges measured every 15 s have been set once
    while True:
        served = set(_SAMPLE.findall(_scrape(traced)))
        missing = {name: sorted(where) for name, where in named.items() if name not in served | SYNTHETIC}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert missing == {}
    assert len(named) >= 15


def test_envoy_metrics_listener_serves_only_the_prometheus_stats(traced: Traced) -> None:
    base = f"http://127.0.0.1:{traced.mesh.settings.envoy_metrics_port}"
    assert httpx.get(f"{base}/stats/prometheus", timeout=10).status_code == 200
    for path in ("/stats", "/quitquitquit", "/config_dump", "/"):
        assert httpx.get(base + path, timeout=10).status_code == 404, path
    assert httpx.post(f"{base}/stats/prometheus", timeout=10).status_code == 404
