"""What tracing costs a checkout: the bench's mesh (tracing off, as shipped) and two more
meshes with tracing on, at 100 % and at 10 % sampling (every process exporting OTLP/HTTP to a
receiver in this process), loaded in turns under the same conditions, side by side.

Each turn is a window like the PlaceOrder soak's (``vus`` callers, closed loop, native gRPC
straight to the order service, then the drain until every event is consumed): CPU of every
process of that mesh per confirmed order. Turns alternate off, 100 %, 10 %, off, ... so a
change of the machine's speed meets each. The receivers count the spans that arrive (per
order: are any dropped?); their own CPU is this process's, not the meshes'. Last, the code
tracing adds to a checkout's path is timed with tracing off (the off path's cost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import placeorder
from bench.cost import Cost
from bench.harness import Harness
from bench.placeorder import Runner, _window
from bench.seeding import seed_products
from bench.view import MeshView
from services.devmesh.traces import OtlpReceiver

NAME = "tracing"
SUMMARY = "checkout CPU per order with tracing off, on at 100% and at 10% sampling (OTLP), side by side"
ROUNDS = 2
CARTS_PER_TURN = 2400  # about 12 s at the max rate here; a turn that runs out ends early (its cost holds)
# Progress lines of each mesh: seeding, then each turn's settle, load and drain (the traced ones
# then wait for their last spans).
STEPS = 2 + ROUNDS * 3
TRACED_STEPS = STEPS + 1
SPAN_FLUSH_S = 6.0  # the SDK exports every 5 s (Envoy alike): wait for the last spans before counting
# The traced meshes: label -> sampling settings (OTEL_TRACES_SAMPLER, _ARG).
TRACED = {"100%": {}, "10%": {"otel_traces_sampler": "parentbased_traceidratio", "otel_traces_sampler_arg": "0.1"}}


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10


def run(harness: Harness, options: Options) -> dict[str, Any]:
    receivers = {label: OtlpReceiver(0, keep=False).start() for label in TRACED}
    traced = {label: Harness(TRACED_STEPS, {"otel_exporter_otlp_endpoint": receivers[label].endpoint, **sampling})
              for label, sampling in TRACED.items()}
    failed = False
    try:
        for label, mesh in traced.items():
            print(f"starting another mesh, tracing on at {label} sampling, to a receiver in this process:",
                  flush=True)
            mesh.start()
        return asyncio.run(_run({"off": harness, **traced}, options, receivers))
    except BaseException:
        failed = True
        raise
    finally:
        for mesh in traced.values():
            mesh.stop(failed)
        for receiver in receivers.values():
            receiver.stop()


async def _run(meshes: dict[str, Harness], o: Options, receivers: dict[str, OtlpReceiver]) -> dict[str, Any]:
    views = {label: await MeshView.open(h) for label, h in meshes.items()}
    try:
        runners = {label: Runner(h, placeorder.Options(vus=o.vus, warmup_s=o.warmup_s, duration_s=o.duration_s),
                                 views[label]) for label, h in meshes.items()}
        for label, h in meshes.items():
            products = await h.astep(f"tracing {label}: seeding products", seed_products(h),
                                     lambda p: f"{len(p)} products")
            await h.astep(f"tracing {label}: seeding {CARTS_PER_TURN * ROUNDS} guest carts",
                          runners[label].seed(products, CARTS_PER_TURN * ROUNDS), str)
        await asyncio.sleep(SPAN_FLUSH_S)  # the seeding's spans are in: count only the turns' from here
        before = {label: receiver.received for label, receiver in receivers.items()}
        costs: dict[str, list[Cost]] = {label: [] for label in meshes}
        for turn in range(1, ROUNDS + 1):
            for label, r in runners.items():
                costs[label].append(await _window(r, f"tracing {label} #{turn}", r.carts.take(CARTS_PER_TURN),
                                                  "direct"))
        for label, receiver in receivers.items():
            await meshes[label].astep("waiting for the last spans", asyncio.sleep(SPAN_FLUSH_S), _spans_of(receiver))
    finally:
        for view in views.values():
            await view.close()
    return _report(costs, {label: r.received - before[label] for label, r in receivers.items()}, runners,
                   _off_path_us())


def _spans_of(receiver: OtlpReceiver) -> Callable[[object], str]:
    return lambda _: f"{receiver.received} spans received in all"


def _off_path_us(orders: int = 20_000) -> float:
    """Microseconds per order that the tracing code on a checkout's path costs with tracing OFF
    (this process has not configured tracing): what one order runs of it in the order service
    (its saga steps, the outcome, the tenant on each RPC, the trace of its outbox rows) and in
    the consumers (a span per event), timed over ``orders`` orders."""
    from services.order.observe import SagaStep, ended
    from services.runtime import telemetry
    from services.runtime.events import tracing

    assert not telemetry.enabled(), "this measures the code with tracing off"
    started = time.perf_counter()
    for n in range(orders):
        order_id = f"o-{n}"
        for name, outcome in (("reserve", "held"), ("charge", "captured"), ("confirm", "confirmed")):
            with SagaStep(name, order_id) as step:
                step.outcome = outcome
        ended("bench", "CONFIRMED", "")
        for _ in range(5):  # PlaceOrder, GetCart, ReserveStock, ChargePayment, and the email's
            telemetry.set_tenant("bench")
        for _ in range(2):  # the order's two events
            tracing.current_traceparent()
            telemetry.enabled()
        for _ in range(4):  # OrderConfirmed by three consumers, PaymentCaptured by none here: 4 at most
            with telemetry.span(""):
                pass
    return (time.perf_counter() - started) / orders * 1e6


def _report(costs: dict[str, list[Cost]], spans: dict[str, int], runners: dict[str, Runner],
            off_us: float) -> dict[str, Any]:
    orders = {label: sum(c.orders for c in windows) for label, windows in costs.items()}
    totals: dict[str, dict[str, float]] = {}
    for label, windows in costs.items():
        seconds: dict[str, float] = {}
        for cost in windows:
            for process, used in cost.cpu_seconds.items():
                seconds[process] = seconds.get(process, 0.0) + used
        totals[label] = seconds
    per_order = {label: 1000 * sum(s.values()) / orders[label] if orders[label] else float("nan")
                 for label, s in totals.items()}
    off = per_order["off"]
    processes = sorted(totals["off"], key=lambda p: -totals["off"][p])
    print(f"\nCheckout CPU per confirmed order, whole mesh, by tracing, {ROUNDS} turns each, alternating "
          "(16 callers, closed loop, direct to the order service: Envoy not in the path):")
    print(f"  {'tracing':<8} {'orders':>7} {'ms/order':>9} {'added':>8} {'spans':>6}  "
          + "  ".join(f"{p:>9}" for p in processes))
    for label in costs:
        added = f"{100 * (per_order[label] - off) / off:+.1f}%" if label != "off" else ""
        per = f"{spans[label] / orders[label]:.1f}" if label in spans and orders[label] else ""
        print(f"  {label:<8} {orders[label]:>7} {per_order[label]:>9.2f} {added:>8} {per:>6}  " + "  ".join(
            f"{1000 * totals[label].get(p, 0.0) / max(orders[label], 1):>9.2f}" for p in processes))
    turns = {label: [round(c.cpu_ms_per_order, 2) for c in windows] for label, windows in costs.items()}
    others = {label: [round(r.others.get(f"tracing {label} #{n}", 0.0), 2) for n in range(1, ROUNDS + 1)]
              for label, r in runners.items()}
    print("  each turn (ms/order): " + "; ".join(f"{label} {t}" for label, t in turns.items())
          + "; others (cores): " + "; ".join(f"{label} {o}" for label, o in others.items()))
    print(f"  tracing off: its code on a checkout's path takes {off_us:.1f} µs per order "
          f"({100 * off_us / 1000 / off:.2f} % of the off mesh's {off:.2f} ms; target < 3 %)")
    return {"rounds": ROUNDS, "orders": orders, "cpu_ms_per_order": {k: round(v, 3) for k, v in per_order.items()},
            "added_percent": {k: round(100 * (v - off) / off, 1) for k, v in per_order.items() if k != "off"},
            "cpu_ms_per_order_by_process": {label: {p: round(1000 * s / max(orders[label], 1), 3)
                                                    for p, s in totals[label].items()} for label in totals},
            "spans_per_order": {k: round(n / orders[k], 1) if orders[k] else None for k, n in spans.items()},
            "turns_cpu_ms_per_order": turns, "others_cores": others,
            "off_path_us_per_order": round(off_us, 2), "off_path_percent": round(100 * off_us / 1000 / off, 3),
            "failed": None}
