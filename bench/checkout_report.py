"""The PlaceOrder benchmark's printout and JSON: runs, cost per order, event lag, targets
(issue "checkout ten times cheaper") and the consistency checks."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Protocol

from bench import costreport
from bench.consistency import Check
from bench.cost import Cost
from bench.jetstream import Flow
from bench.lag import Lag
from bench.load import Run
from bench.seeding import Carts
from bench.timeline import Slice, Timeline
from bench.verdict import Target

CPU_MS = 12.0
TARGET_RATE = 150.0
STATEMENTS = 25.0
RATE, STRETCH_RATE = 150.0, 250.0
P50_MS, P99_MS, LAG_MS = 15.0, 50.0, 100.0
SOAK_MIN_S, SOAK_SLICE_S, SOAK_DRIFT_PCT = 60.0, 10.0, 10.0
UNEVEN_CORES = 0.15  # other processes' load differing more than this between the soak's slices
LABELS = {"probe": "probe, 16 callers (warm-up; sizes the seeding)", "uncontended": "uncontended, 1 caller",
          "soak": "max direct = soak, 16 callers closed loop", "envoy": "max through Envoy, 16 callers",
          "half": "half the max, open loop, direct", "target": "150 orders/s (the target), open loop, direct",
          "bare": "bare asyncpg transaction (no target)"}


class _Options(Protocol):
    @property
    def vus(self) -> int: ...


def _runs_table(runs: Mapping[str, tuple[Run[Any], float]], others: Mapping[str, float],
                half: float) -> tuple[str, dict[str, Any]]:
    width = max(len(label) for label in LABELS.values())
    head = (f"{'run':<{width}}  {'orders/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'orders':>6}  {'errors':>6}  {'s':>5}"
            f"  {'others':>6}")
    lines, figures = [head, "-" * len(head)], {}
    for name, label in LABELS.items():
        if name not in runs:
            continue
        run, seconds = runs[name]
        m = run.measured(seconds, {"half": half, "target": TARGET_RATE}.get(name))
        figures[name] = {**asdict(m), "other_processes_cores": others.get(name)}
        note = " (ran out of carts)" if m.ran_out else ""
        lines.append(f"{label:<{width}}  {m.per_s:>8.1f}  {m.p50_ms:>7.1f}  {m.p99_ms:>7.1f}  {m.calls:>6}  "
                     f"{m.errors:>6}  {m.seconds:>5.0f}  {others.get(name, math.nan):>6.2f}{note}")
        if m.error_kinds:
            lines.append(f"{'':<{width}}  errors: " + ", ".join(f"{k} x{n}" for k, n in m.error_kinds.items()))
    return "\n".join(lines), figures


def soak_slices(run: Run[Any], seconds: float, timeline: Timeline) -> tuple[Slice, Slice]:
    return (timeline.slice(run, 0.0, min(SOAK_SLICE_S, seconds)),
            timeline.slice(run, max(0.0, seconds - SOAK_SLICE_S), seconds))


def _soak_target(first: Slice, last: Slice, seconds: float) -> Target:
    why = ""
    if seconds < SOAK_MIN_S - 0.5:
        why = f"the soak ran {seconds:.0f}s, not >= {SOAK_MIN_S:g}s"
    elif abs(first.other_cores - last.other_cores) > UNEVEN_CORES:
        why = (f"other processes took {first.other_cores:.2f} cores in the first slice and {last.other_cores:.2f} in "
               "the last: the machine was shared unevenly")
    drift = abs(last.orders_per_s / first.orders_per_s - 1) * 100 if first.orders_per_s else math.nan
    return Target(f"soak flat: last {SOAK_SLICE_S:g}s {last.orders_per_s:.1f}/s vs first {SOAK_SLICE_S:g}s "
                  f"{first.orders_per_s:.1f}/s (mesh CPU {last.mesh_ms_per_order:.1f} vs {first.mesh_ms_per_order:.1f} "
                  "ms/order), difference", drift, SOAK_DRIFT_PCT, " %", not_measured=why)


def _lag_target(lag: Lag, where: str = "at the max rate") -> Target:
    value = math.inf if lag.missing else lag.p99_ms
    note = f"; {lag.missing} of {lag.events} events never reached it" if lag.missing else ""
    return Target(f"OrderConfirmed outbox -> {lag.consumer} lag p99 {where} ({lag.events} events, "
                  f"p50 {lag.p50_ms:.1f} ms, max {lag.max_ms:.0f} ms{note})", value, LAG_MS, " ms",
                  not_measured="" if lag.events else "no event in the window")


def _target_rate_goals(runs: Mapping[str, tuple[Run[Any], float]], lags: list[Lag] | None) -> list[Target]:
    """The open-loop run at the throughput target: p99 and lag there (no target for the p99)."""
    if lags is None or "target" not in runs:
        return [Target(f"OrderConfirmed outbox -> consumer lag p99 at {TARGET_RATE:g} orders/s, open loop", math.nan,
                       LAG_MS, " ms", not_measured=f"the max rate is below {TARGET_RATE:g} orders/s")]
    m = runs["target"][0].measured(runs["target"][1], TARGET_RATE)
    where = f"at {TARGET_RATE:g} orders/s, open loop (order p99 {m.p99_ms:.0f} ms)"
    return [_lag_target(lag, where) for lag in lags]


def targets(runs: Mapping[str, tuple[Run[Any], float]], slices: tuple[Slice, Slice], soak: Cost, lags: list[Lag],
            options: _Options, half: float, unsettled: Mapping[str, str],
            target_lags: list[Lag] | None = None) -> list[Target]:
    m = {name: run.measured(seconds) for name, (run, seconds) in runs.items()}
    drained = "" if soak.drained.complete else "the soak's tail did not drain: " + soak.drained.note
    if "soak" in unsettled:
        drained = "the mesh had not settled before the soak: " + unsettled["soak"]
    half_m = runs["half"][0].measured(runs["half"][1], half)
    out = [  # the first two are also printed under their tables
        Target(f"CPU per confirmed order, whole mesh (soak, {soak.orders} orders)", soak.cpu_ms_per_order, CPU_MS,
               " ms", not_measured=drained),
        Target("SQL statements per order, all services (BEGIN/COMMIT/ROLLBACK left out; "
               f"{soak.per_order(soak.statement_calls()):.1f} with them)",
               soak.per_order(soak.statement_calls(False)), STATEMENTS, not_measured=drained),
        Target(f"max rate direct ({options.vus} callers, closed loop)", m["soak"].per_s, RATE, " orders/s", True),
        Target("  stretch", m["soak"].per_s, STRETCH_RATE, " orders/s", True),
        Target(f"max rate through Envoy ({options.vus} callers)", m["envoy"].per_s, RATE, " orders/s", True),
        Target("  stretch", m["envoy"].per_s, STRETCH_RATE, " orders/s", True),
        Target("uncontended p50 (1 caller)", m["uncontended"].p50_ms, P50_MS, " ms"),
        Target(f"p99 at half the max rate ({half_m.offered_per_s:.0f} orders/s offered, open loop)", half_m.p99_ms,
               P99_MS, " ms", not_measured="" if half_m.calls else "no order completed"),
        *(_lag_target(lag) for lag in lags),
        *_target_rate_goals(runs, target_lags),
        _soak_target(*slices, runs["soak"][1]),
    ]
    if not lags:
        out.append(Target("OrderConfirmed outbox -> consumer lag p99", math.nan, LAG_MS, " ms",
                          not_measured="no durable consumer of OrderConfirmed found"))
    return out


@dataclass(frozen=True)
class Results:
    runs: Mapping[str, tuple[Run[Any], float]]
    others: Mapping[str, float]  # cores other processes used during each run
    soak_timeline: Timeline
    soak: Cost
    envoy: Cost
    flows: list[Flow]  # the soak window's events by subject
    lags: list[Lag]
    checks: list[Check]
    events: int  # in the stream at the end
    carts: Carts
    options: _Options
    half: float  # the half-rate run's offered rate
    unsettled: Mapping[str, str]  # runs begun before the mesh had settled: what was still moving
    idle_cores: Mapping[str, float]  # the mesh's CPU at rest by process, before the soak
    target_lags: list[Lag] | None = None  # the run at the target rate (None: not run)


def _print_cost(soak: Cost, envoy: Cost, goals: list[Target], idle: Mapping[str, float]) -> float:
    """The soak's cost tables and the Envoy run's summary; Envoy's ms per order."""
    print(f"\nCost per confirmed order over the soak's window: {soak.orders} orders in {soak.seconds:.1f}s "
          f"(load + {soak.drained.seconds:.1f}s until every event was consumed). CPU from /proc of every mesh "
          f"process\n(PostgreSQL: postmaster, all backends and workers, and those that exited); the load "
          f"generator and the benchmark's own PostgreSQL backends left out. {os.cpu_count()} cores, shared.\n")
    print(costreport.cpu_table(soak))
    print(goals[0].line())
    rate, cores = soak.orders / soak.seconds if soak.seconds else math.nan, sum(idle.values())
    busiest = sorted(idle.items(), key=lambda item: -item[1])[:4]
    print(f"mesh at rest (before the soak): {cores:.3f} cores (" + ", ".join(f"{n} {c:.3f}" for n, c in busiest)
          + f"), i.e. {cores * 1000 / rate:.1f} ms of each order's CPU at the soak's rate")
    print(costreport.machine_line(soak))
    print("\nRPCs handled (commerce_rpc_total of each service), per confirmed order:\n")
    print(costreport.rpc_table(soak))
    print("\nTransactions (pg_stat_database) and statements (pg_stat_statements), per confirmed order; "
          "the benchmark's own left out:\n")
    print(costreport.database_table(soak))
    print(goals[1].line())
    print("(pg_stat_database also counts the transaction a LISTENing backend runs to read each NOTIFY it is woken\n"
          " for, so a database with listeners shows more transactions than BEGINs; connections opened: new sessions)")
    print("\nStatements run most often:\n")
    print(costreport.top_statements(soak))
    envoy_ms = envoy.per_order(envoy.cpu_seconds.get("envoy", 0.0) * 1000)
    print(f"\nThrough Envoy: {envoy.cpu_ms_per_order:.1f} ms CPU per confirmed order for the whole mesh, of which "
          f"Envoy {envoy_ms:.2f} ms ({envoy.orders} orders); {envoy.per_order(envoy.shopper_rpcs):.1f} RPCs per order")
    return envoy_ms


def _print_flows(flows: list[Flow], soak: Cost) -> None:
    print("\nEvents published in the soak's window (JetStream), per confirmed order, and who consumes them:\n")
    head = f"{'subject':<48} {'/order':>7}  consumed by"
    print(head + "\n" + "-" * len(head))
    for flow in flows:
        print(f"{flow.subject + '.<tenant>':<48} {soak.per_order(flow.count):>7.2f}  "
              f"{', '.join(flow.consumers) or 'nobody'}")


def report(r: Results) -> dict[str, Any]:
    table, figures = _runs_table(r.runs, r.others, r.half)
    print("\n" + table)
    print("(others: cores used meanwhile by processes that are neither the mesh nor this load generator)")
    carts = r.carts
    print(f"\ncarts seeded: {len(carts.tokens)} in {carts.seeded_seconds:.1f}s "
          f"({len(carts.tokens) / carts.seeded_seconds if carts.seeded_seconds else 0:.0f}/s), outside every window")
    slices = soak_slices(*r.runs["soak"], r.soak_timeline)
    goals = targets(r.runs, slices, r.soak, r.lags, r.options, r.half, r.unsettled, r.target_lags)
    for name, note in r.unsettled.items():
        print(f"\nwarning: run {name!r} began before the mesh had settled ({note})")
    envoy_ms = _print_cost(r.soak, r.envoy, goals, r.idle_cores)
    _print_flows(r.flows, r.soak)
    print(f"\nSoak, first and last {SOAK_SLICE_S:g}s: " + "; ".join(
        f"{s.start:.0f}-{s.end:.0f}s {s.orders_per_s:.1f} orders/s, mesh CPU {s.mesh_ms_per_order:.1f} ms/order, "
        f"others {s.other_cores:.2f} cores" for s in slices))
    print("\nTargets (issue \"checkout ten times cheaper\"):")
    for goal in goals:
        print("  " + goal.line())
    print(f"\nConsistency over the whole run ({r.events} events in the stream):")
    for check in r.checks:
        print("  " + check.line())
    failed = [c.label for c in r.checks if not c.passed]
    return {"options": asdict(r.options) if is_dataclass(r.options) else None, "runs": figures,
            "seeding": {"carts": len(carts.tokens), "seconds": round(carts.seeded_seconds, 1)},
            "soak_cost": r.soak.as_json(),
            "envoy_cost": {**r.envoy.as_json(), "envoy_cpu_ms_per_order": round(envoy_ms, 3)},
            "events_per_order": {f.subject: {"per_order": round(r.soak.per_order(f.count), 3),
                                             "consumed_by": list(f.consumers)} for f in r.flows},
            "event_lag": [lag.as_json() for lag in r.lags],
            "event_lag_at_target_rate": None if r.target_lags is None else [lag.as_json() for lag in r.target_lags],
            "soak_slices": [s.as_json() for s in slices],
            "mesh_idle_cores": {name: round(c, 4) for name, c in r.idle_cores.items()},
            "targets": [g.as_json() for g in goals],
            "consistency": [c.as_json() for c in r.checks],
            "failed": f"consistency checks failed: {', '.join(failed)}" if failed else None}
