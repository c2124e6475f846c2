"""PlaceOrder through the whole mesh: what a confirmed order costs, how many the mesh
sustains, how fast, and whether everything adds up afterwards (issue "checkout ten times
cheaper"). Every order has its own guest with one cart line (a guest token and one
AddCartItem each, seeded beforehand, outside every measured window); the payment token
always succeeds and stock is large, so every order should end CONFIRMED.

Runs, in order (callers are Python grpc.aio in this process, never counted as the mesh):

1. uncontended: one caller, one order after the other: p50.
2. probe: 16 callers for a few seconds; sizes the seeding of the soak.
3. soak = max rate direct: ``vus`` callers, closed loop, native gRPC straight to the order
   service, ``soak_s`` seconds (>= 60). Its window (load + the tail until every event is
   consumed) gives the cost per confirmed order: CPU of every process of the mesh, RPCs,
   transactions, statements; its OrderConfirmed events give the outbox -> consumer lag;
   its first and last 10 s tell whether the cost stays flat as tables grow.
4. max rate through Envoy: the same callers, native gRPC to the Envoy listener.
5. half the soak's rate, open loop (no coordinated omission): p99.
6. bare: one asyncpg transaction per order (no target; tells what PostgreSQL alone does).
7. consistency over the whole run, after the last drain (bench/consistency.py).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from commerce.order.v1 import order_pb2, order_pb2_grpc

from bench import bare, checkout_report
from bench.consistency import Check, Consistency
from bench.cost import Window
from bench.cpu import used
from bench.harness import BenchError, Harness
from bench.jetstream import Event, flows
from bench.lag import Lag, consumer_lags
from bench.load import Run, closed_loop, open_loop, sequential
from bench.seeding import Carts, seed_products
from bench.timeline import Timeline, sampling
from bench.view import MeshView

NAME = "placeorder"
SUMMARY = "PlaceOrder through the whole mesh: cost per order, max rate, latency, event lag, soak, consistency"
STEPS = 19
ADDRESS = order_pb2.Address(recipient="Bench Buyer", line1="1 Bench St", city="Springfield", region="IL",
                            postal_code="62701", country_code="US")
PROBE = (1000, 1.0, 4.0)  # carts, warm-up s, seconds (at most: it ends when its carts do)
UNCONTENDED = (20, 200)  # warm-up orders, measured orders
# Carts seeded for a closed-loop run: its expected orders x this. The soak's expectation comes
# from the short probe (noisy on a shared machine); carts a run leaves go to the next runs.
SOAK_MARGIN = 1.5
TARGET_RATE = 150.0  # orders/s: the throughput target, also run open loop for its lag
MARGIN = 1.3
IDLE_S = 3.0  # the mesh at rest, measured before the soak


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10
    soak_s: int = 60


def _placer(stub: order_pb2_grpc.OrderServiceStub) -> Any:
    async def place(token: str) -> None:
        reply = await stub.PlaceOrder(order_pb2.PlaceOrderRequest(
            request_id=f"bench-{uuid.uuid4().hex}", shipping_address=ADDRESS, payment_token="tok_sandbox_ok",
            email="buyer@bench.test"), metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        if reply.order.status != order_pb2.ORDER_STATUS_CONFIRMED:
            raise BenchError(f"answered {order_pb2.OrderStatus.Name(reply.order.status)}")
    return place


class Runner:
    """The benchmark's state between its steps."""

    def __init__(self, harness: Harness, options: Options, view: MeshView) -> None:
        self.harness, self.options, self.view = harness, options, view
        self.carts = Carts()
        self.runs: dict[str, tuple[Run[Any], float]] = {}
        self.others: dict[str, float] = {}  # cores other processes of the machine used during each run
        self.timelines: dict[str, Timeline] = {}  # CPU sampled every second during each run
        self.unsettled: dict[str, str] = {}  # runs that began before the mesh had settled: what was left
        self.idle_cores: dict[str, float] = {}  # the mesh's CPU at rest by process (probes, relays, consumers)

    async def measure(self, name: str, action: Awaitable[tuple[Run[Any], float]],
                      settle: bool = True) -> tuple[Run[Any], float]:
        """Runs ``action`` as run ``name`` (after the mesh settled), noting how busy the rest of
        the machine was meanwhile."""
        if settle:
            await _settle(self, name)
        async with sampling(self.view.cpu) as timeline:
            result = await action
        self.timelines[name] = timeline
        before, after = timeline.samples[0], timeline.samples[-1]
        busy = after.machine - before.machine - (after.own - before.own) - sum(used(before, after).values())
        self.others[name] = round(max(0.0, busy) / (after.time - before.time), 2)
        self.runs[name] = result
        return result

    async def seed(self, products: Any, count: int) -> str:
        done = await self.carts.seed(self.harness, products, max(0, count))
        carts = self.carts
        return f"{done} more, {carts.left} ready ({len(carts.tokens)} in {carts.seeded_seconds:.0f}s so far)"

    async def load(self, target: str, shape: str, supply: Iterator[str], **kw: float) -> tuple[Run[str], float]:
        address = self.harness.mesh.edge_address if target == "envoy" else self.harness.mesh.address_of("order")
        async with grpc.aio.insecure_channel(address) as channel:
            place = _placer(order_pb2_grpc.OrderServiceStub(channel))
            if shape == "closed":
                return await closed_loop(place, supply, int(kw["callers"]), kw["warmup_s"], kw["duration_s"])
            if shape == "open":
                return await open_loop(place, supply, kw["rate"], kw["warmup_s"], kw["duration_s"])
            return await sequential(place, supply, int(kw["warmup_calls"]), int(kw["calls"]))


def _rate(result: tuple[Run[str], float]) -> float:
    run, seconds = result
    return run.rate(0.0, seconds)


async def _run(harness: Harness, options: Options) -> dict[str, Any]:
    view = await MeshView.open(harness)
    try:
        return await _steps(Runner(harness, options, view))
    finally:
        await view.close()


async def _steps(r: Runner) -> dict[str, Any]:
    h, o = r.harness, r.options
    products = await h.astep("seeding products with large stock", seed_products(h), lambda p: f"{len(p)} products")
    first = PROBE[0] + sum(UNCONTENDED)
    await h.astep(f"seeding {first} guest carts (guest token + AddCartItem each)", r.seed(products, first), str)
    await h.astep(
        f"uncontended: 1 caller, {UNCONTENDED[0]} + {UNCONTENDED[1]} orders one after the other",
        r.measure("uncontended", r.load("direct", "sequential", r.carts.take(sum(UNCONTENDED)),
                                        warmup_calls=UNCONTENDED[0], calls=UNCONTENDED[1])),
        lambda res: f"p50 {res[0].measured(res[1]).p50_ms:.1f} ms")
    await h.astep(
        f"probe: {o.vus} callers, direct, {PROBE[1]:g}s warm-up + up to {PROBE[2]:g}s",
        r.measure("probe", r.load("direct", "closed", r.carts.take(), callers=o.vus, warmup_s=PROBE[1],
                                  duration_s=PROBE[2])),
        lambda res: f"{_rate(res):.0f} orders/s")
    rate = max(_rate(r.runs["probe"]), 1.0)
    soak_carts = math.ceil(rate * SOAK_MARGIN * (o.warmup_s + o.soak_s)) + o.vus
    await h.astep(f"seeding carts for the soak: {SOAK_MARGIN:g} x the probe's {rate:.0f} orders/s x "
                  f"{o.warmup_s + o.soak_s}s", r.seed(products, soak_carts - r.carts.left), str)
    soak = await _window(r, "soak", r.carts.take(soak_carts), "direct")
    events = await h.astep("reading the soak's OrderConfirmed events back from JetStream",
                           r.view.stream.events(soak.first_seq), lambda e: f"{len(e)} events of the window")
    soak_events = [e for e in events if e.seq <= soak.last_seq]
    soak_flows = flows(soak_events, await r.view.stream.durables())
    confirmed_events = [e for e in soak_events if e.subject == r.view.confirmed_subject]
    lags = await consumer_lags(r.view, confirmed_events)
    rate = max(_rate(r.runs["soak"]), 1.0)
    half = rate / 2
    envoy_carts = math.ceil(rate * MARGIN * (o.warmup_s + o.duration_s)) + o.vus
    half_carts = math.ceil(half * (o.warmup_s + o.duration_s)) + o.vus
    await h.astep(f"seeding carts for the Envoy run and the half-rate run ({rate:.0f} and {half:.0f} orders/s)",
                  r.seed(products, envoy_carts + half_carts - r.carts.left), str)
    envoy = await _window(r, "envoy", r.carts.take(envoy_carts), "envoy")
    await h.astep(
        f"half the soak's rate: {half:.0f} orders/s, open loop, direct",
        r.measure("half", r.load("direct", "open", r.carts.take(), rate=half, warmup_s=o.warmup_s,
                                 duration_s=o.duration_s)),
        lambda res: f"p99 {res[0].measured(res[1], half).p99_ms:.0f} ms")
    target_lags = await _at_target_rate(r, products, rate)
    await h.astep(f"bare asyncpg transaction: {o.vus} callers",
                  r.measure("bare", bare.run(h, o.vus, o.warmup_s, o.duration_s)), lambda res: f"{_rate(res):.0f}/s")
    checks, all_events = await h.astep("final drain, then the consistency checks over the whole run",
                                       _consistency(r, products), lambda c: f"{sum(not x.passed for x in c[0])} failed")
    return checkout_report.report(checkout_report.Results(r.runs, r.others, r.timelines["soak"], soak, envoy,
                                                          soak_flows, lags, checks, len(all_events), r.carts, o,
                                                          half, r.unsettled, r.idle_cores, target_lags))


async def _at_target_rate(r: Runner, products: Any, max_rate: float) -> list[Lag] | None:
    """An open-loop run at the throughput target (150 orders/s): the latency and event lag a shop
    sees at that load, below saturation. None (not measured) when the max rate is below it."""
    h, o = r.harness, r.options
    if max_rate < TARGET_RATE:
        return None
    carts = math.ceil(TARGET_RATE * (o.warmup_s + o.duration_s)) + o.vus
    await h.astep(f"seeding carts for the run at the target rate ({TARGET_RATE:g} orders/s)",
                  r.seed(products, carts - r.carts.left), str)
    first = await r.view.stream.last_seq()
    await h.astep(
        f"the target rate: {TARGET_RATE:g} orders/s, open loop, direct",
        r.measure("target", r.load("direct", "open", r.carts.take(carts), rate=TARGET_RATE, warmup_s=o.warmup_s,
                                   duration_s=o.duration_s)),
        lambda res: f"p99 {res[0].measured(res[1], TARGET_RATE).p99_ms:.0f} ms")
    await r.view.drain()
    events = [e for e in await r.view.stream.events(first + 1) if e.subject == r.view.confirmed_subject]
    return await consumer_lags(r.view, events)


async def _window(r: Runner, name: str, supply: Iterator[str], target: str) -> Any:
    h, o = r.harness, r.options
    seconds = o.soak_s if name == "soak" else o.duration_s
    await h.astep("letting the mesh settle (every order final, every event consumed)", _settle(r, name), str)
    if name == "soak":
        await h.astep(f"the mesh at rest for {IDLE_S:g}s (its CPU without orders)", _idle(r),
                      lambda cores: f"{cores:.3f} cores")
    window = Window(r.view)
    await window.start()
    await h.astep(
        f"{name}: {o.vus} callers, closed loop, {'Envoy' if target == 'envoy' else 'direct'}, "
        f"{o.warmup_s}s warm-up + {seconds}s",
        r.measure(name, r.load(target, "closed", supply, callers=o.vus, warmup_s=o.warmup_s, duration_s=seconds),
                  settle=False),
        lambda res: f"{_rate(res):.0f} orders/s, {sum(res[0].errors.values())} errors"
        + (" (ran out of carts)" if res[0].ran_out else ""))
    return await h.astep("draining (until every event is consumed), then reading the counters", window.stop(),
                         lambda c: f"{c.orders} confirmed, drained in {c.drained.seconds:.1f}s"
                         + ("" if c.drained.complete else f" NOT complete: {c.drained.note}"))


async def _idle(r: Runner) -> float:
    async with sampling(r.view.cpu) as timeline:
        await asyncio.sleep(IDLE_S)
    before, after = timeline.samples[0], timeline.samples[-1]
    wall = after.time - before.time
    r.idle_cores = {name: seconds / wall for name, seconds in used(before, after).items()}
    return sum(r.idle_cores.values())


async def _settle(r: Runner, name: str) -> str:
    """Waits for the mesh to settle before run ``name``; one that does not is noted, not fatal
    (the consistency checks at the end will say what is wrong)."""
    drained = await r.view.drain()
    if drained.complete:
        return "settled"
    r.unsettled[name] = drained.note
    return f"NOT settled after {drained.seconds:.0f}s ({drained.note}); going on"


async def _consistency(r: Runner, products: Any) -> tuple[list[Check], list[Event]]:
    drained = await r.view.drain()
    events = await r.view.stream.events()
    settled = Check("every event consumed before the checks", drained.complete,
                    f"drained in {drained.seconds:.1f}s" if drained.complete else drained.note)
    return [settled, *await Consistency(r.view).run(products, events)], events


def run(harness: Harness, options: Options) -> dict[str, Any]:
    return asyncio.run(_run(harness, options))
