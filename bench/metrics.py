"""The services' Prometheus counters the benchmarks read: RPCs handled
(``commerce_rpc_total{method,code}``) and outbox rows waiting (``commerce_outbox_pending``)."""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

RPC_SAMPLE = "commerce_rpc_total"
OUTBOX_PENDING = "commerce_outbox_pending"


class MetricsError(RuntimeError):
    pass


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the endpoint, by sample name: (labels, value)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    except OSError as error:
        raise MetricsError(f"cannot read metrics at {url}: {error}") from None
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return samples


def rpc_counts(urls: Mapping[str, str]) -> Counter[tuple[str, str, str]]:
    """RPCs handled so far: (process, method, code) -> count, over every endpoint of ``urls``."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for name, url in urls.items():
        for labels, value in scrape(url).get(RPC_SAMPLE, []):
            counts[(name, labels.get("method", "?"), labels.get("code", "?"))] += int(value)
    return counts


def outbox_pending(urls: Mapping[str, str]) -> float | None:
    """Outbox rows not yet published, summed over the endpoints (None: no service reports it)."""
    values = [value for url in urls.values() for _, value in scrape(url).get(OUTBOX_PENDING, [])]
    return sum(values) if values else None
