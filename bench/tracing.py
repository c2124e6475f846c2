"""What tracing costs a checkout: the bench's mesh (tracing off, as shipped) and a second
mesh with tracing on at 100 % sampling (every process exporting OTLP/HTTP to a receiver in
this process), loaded in turns under the same conditions, side by side.

Each turn is a window like the PlaceOrder soak's (``vus`` callers, closed loop, native gRPC
straight to the order service, then the drain until every event is consumed): CPU of every
process of that mesh per confirmed order. Turns alternate off, on, off, on, ... so a change
of the machine's speed meets both. The receiver counts the spans that arrive (per order: are
any dropped?); its own CPU is this process's, not the mesh's.
"""

from __future__ import annotations

import asyncio
import time
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
SUMMARY = "checkout CPU per order with tracing off and on (100% sampling, OTLP), side by side"
ROUNDS = 2
CARTS_PER_TURN = 2400  # about 12 s at the max rate here; a turn that runs out ends early (its cost holds)
# Progress lines on the bench's own mesh (seeding, then each turn's settle, load, drain) and on the
# traced mesh (the same, then the wait for the last spans).
STEPS = 2 + ROUNDS * 3
TRACED_STEPS = STEPS + 1
SPAN_FLUSH_S = 6.0  # the SDK exports every 5 s (Envoy alike): wait for the last spans before counting


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10


def run(harness: Harness, options: Options) -> dict[str, Any]:
    receiver = OtlpReceiver(0, keep=False).start()
    traced = Harness(TRACED_STEPS, otel_exporter_otlp_endpoint=receiver.endpoint)
    failed = False
    try:
        print("starting a second mesh, tracing on (100% sampling) to a receiver in this process:", flush=True)
        traced.start()
        return asyncio.run(_run({"off": harness, "on": traced}, options, receiver))
    except BaseException:
        failed = True
        raise
    finally:
        traced.stop(failed)
        receiver.stop()


async def _run(meshes: dict[str, Harness], o: Options, receiver: OtlpReceiver) -> dict[str, Any]:
    views = {label: await MeshView.open(h) for label, h in meshes.items()}
    try:
        runners = {label: Runner(h, placeorder.Options(vus=o.vus, warmup_s=o.warmup_s, duration_s=o.duration_s),
                                 views[label]) for label, h in meshes.items()}
        for label, h in meshes.items():
            products = await h.astep(f"tracing {label}: seeding products", seed_products(h),
                                     lambda p: f"{len(p)} products")
            await h.astep(f"tracing {label}: seeding {CARTS_PER_TURN * ROUNDS} guest carts",
                          runners[label].seed(products, CARTS_PER_TURN * ROUNDS), str)
        costs: dict[str, list[Cost]] = {label: [] for label in meshes}
        for turn in range(1, ROUNDS + 1):
            for label, r in runners.items():
                costs[label].append(await _window(r, f"tracing {label} #{turn}", r.carts.take(CARTS_PER_TURN),
                                                  "direct"))
        await meshes["on"].astep("waiting for the last spans", asyncio.sleep(SPAN_FLUSH_S),
                                 lambda _: f"{receiver.received} spans received")
    finally:
        for view in views.values():
            await view.close()
    return _report(costs, receiver.received, runners, _off_path_us())


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


def _report(costs: dict[str, list[Cost]], spans: int, runners: dict[str, Runner], off_us: float) -> dict[str, Any]:
    totals: dict[str, dict[str, float]] = {}
    orders: dict[str, int] = {}
    for label, windows in costs.items():
        orders[label] = sum(c.orders for c in windows)
        seconds: dict[str, float] = {}
        for cost in windows:
            for process, used in cost.cpu_seconds.items():
                seconds[process] = seconds.get(process, 0.0) + used
        totals[label] = seconds
    per_order = {label: 1000 * sum(s.values()) / orders[label] if orders[label] else float("nan")
                 for label, s in totals.items()}
    processes = sorted(totals["off"], key=lambda p: -totals["off"][p])
    print(f"\nCheckout CPU per confirmed order, whole mesh, tracing off vs on (100% sampling), {ROUNDS} turns each, "
          "alternating:")
    print(f"  {'tracing':<8} {'orders':>7} {'ms/order':>9}  " + "  ".join(f"{p:>9}" for p in processes))
    for label in costs:
        print(f"  {label:<8} {orders[label]:>7} {per_order[label]:>9.2f}  " + "  ".join(
            f"{1000 * totals[label].get(p, 0.0) / max(orders[label], 1):>9.2f}" for p in processes))
    turns = {label: [round(c.cpu_ms_per_order, 2) for c in windows] for label, windows in costs.items()}
    others = {label: [round(r.others.get(f"tracing {label} #{n}", 0.0), 2) for n in range(1, ROUNDS + 1)]
              for label, r in runners.items()}
    added = per_order["on"] - per_order["off"]
    spans_per_order = spans / orders["on"] if orders["on"] else float("nan")
    print(f"  each turn (ms/order): off {turns['off']}, on {turns['on']}; others (cores) off {others['off']}, "
          f"on {others['on']}")
    print(f"  tracing on costs {added:+.2f} ms of CPU per order ({100 * added / per_order['off']:+.1f} %); "
          f"{spans_per_order:.1f} spans per order received (Envoy not in this path)")
    print(f"  tracing off: its code on a checkout's path takes {off_us:.1f} µs per order "
          f"({100 * off_us / 1000 / per_order['off']:.2f} % of the off mesh's {per_order['off']:.2f} ms; target < 3 %)")
    return {"rounds": ROUNDS, "orders": orders, "cpu_ms_per_order": {k: round(v, 3) for k, v in per_order.items()},
            "cpu_ms_per_order_by_process": {label: {p: round(1000 * s / max(orders[label], 1), 3)
                                                    for p, s in totals[label].items()} for label in totals},
            "turns_cpu_ms_per_order": turns, "others_cores": others,
            "added_ms_per_order": round(added, 3), "added_percent": round(100 * added / per_order["off"], 1),
            "spans_per_order": round(spans_per_order, 1), "off_path_us_per_order": round(off_us, 2),
            "off_path_percent": round(100 * off_us / 1000 / per_order["off"], 3), "failed": None}
