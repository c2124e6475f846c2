"""The figures of a benchmark as a text table and as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.k6 import Measured

CPU_COLUMNS = ("server", "envoy", "postgres", "k6", "total")


@dataclass(frozen=True)
class Row:
    scenario: str
    label: str
    measured: Measured
    cpu_cores: dict[str, float]  # by process: server, envoy, postgres, k6
    envoy_us_per_request: float | None = None  # Envoy's CPU over the whole k6 run / every request of it
    other_cores: float | None = None  # processes outside the mesh, k6 and the benchmark, meanwhile

    @property
    def server_us_per_request(self) -> float | None:
        """CPU time the server (catalog or bare) spent per answered request, in microseconds."""
        cores = self.cpu_cores.get("server")
        rate = self.measured.requests_per_s
        return None if cores is None or not rate else cores * 1e6 / rate

    def as_json(self) -> dict[str, Any]:
        per_request = self.server_us_per_request
        return {"scenario": self.scenario, "label": self.label, **asdict(self.measured), "cpu_cores": self.cpu_cores,
                "server_cpu_us_per_request": None if per_request is None else round(per_request),
                "envoy_cpu_us_per_request": None if self.envoy_us_per_request is None
                else round(self.envoy_us_per_request), "other_processes_cores": self.other_cores}


@dataclass(frozen=True)
class Ratio:
    label: str
    numerator: str  # scenario names
    denominator: str
    target: float | None  # None: for information

    def value(self, rows: Sequence[Row]) -> float:
        by_name = {row.scenario: row.measured.requests_per_s for row in rows}
        return by_name[self.numerator] / by_name[self.denominator]

    def as_json(self, rows: Sequence[Row]) -> dict[str, Any]:
        value = self.value(rows)
        return {"label": self.label, "numerator": self.numerator, "denominator": self.denominator,
                "value": round(value, 3), "target": self.target,
                "met": None if self.target is None else value >= self.target}


def table(rows: Sequence[Row], ratios: Sequence[Ratio]) -> str:
    width = max(len(row.label) for row in rows)
    head = (f"{'scenario':<{width}}  {'req/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}  {'errors':>6}  {'srv us/req':>10}  "
            f"{'envoy us/req':>12}   CPU cores: " + " ".join(f"{c:>8}" for c in CPU_COLUMNS) + f" {'others':>7}")
    lines = [head, "-" * len(head)]
    for row in rows:
        m = row.measured
        cores = {**row.cpu_cores, "total": sum(row.cpu_cores.values())}
        cpu = " ".join(f"{cores[c]:>8.2f}" if c in cores else f"{'-':>8}" for c in CPU_COLUMNS)
        per_request = row.server_us_per_request
        us = f"{per_request:>10.0f}" if per_request is not None else f"{'-':>10}"
        envoy = f"{row.envoy_us_per_request:>12.0f}" if row.envoy_us_per_request is not None else f"{'-':>12}"
        others = f"{row.other_cores:>7.2f}" if row.other_cores is not None else f"{'-':>7}"
        lines.append(f"{row.label:<{width}}  {m.requests_per_s:>7.0f}  {m.p50_ms:>7.2f}  {m.p99_ms:>7.2f}  "
                     f"{m.errors:>6}  {us}  {envoy}   {'':11}{cpu} {others}")
    lines.append("")
    for ratio in ratios:
        value = ratio.value(rows)
        if ratio.target is None:
            lines.append(f"{ratio.label}: {value:.2f}  (no target; for information)")
        else:
            verdict = "met" if value >= ratio.target else "NOT met"
            lines.append(f"{ratio.label}: {value:.2f}  (target >= {ratio.target:g}: {verdict})")
    return "\n".join(lines)
