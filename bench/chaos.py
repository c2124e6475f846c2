"""The chaos run: steady checkout load from many shoppers (through Envoy, each retrying with its
request_id as a real client does) on a supervised mesh (`make run`'s supervisor restarts what
exits) while, one after another, the order, payment and catalog services are SIGKILLed
mid-saga, NATS is down (stopped, held down), PostgreSQL is restarted (fast shutdown, started
again by the supervisor) and the sandbox payment provider times out for a while
(COMMERCE_PAYMENT_SANDBOX_OUTAGE_FILE). Then it checks what a shop owner would: orders attempted,
confirmed, failed; units oversold; orders charged twice or charged without a confirmed order;
orders not terminal some time after the last fault; every OrderConfirmed consumed exactly once
by each consumer; calls that failed outside a fault's window; and how long each fault took to heal.

A fault's window runs from its injection until it healed (the process ready again, the outage
over) plus GRACE_S; a call that failed outside every window is a failure of the mesh, not of the
fault. Heal time: from the injection until the process was ready again and the last call it
failed had ended, whichever is later. ``--short`` (CI) runs every fault shorter, at a lower rate.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from commerce.order.v1 import order_pb2, order_pb2_grpc

from bench.consistency import Check, Consistency
from bench.harness import BenchError, Harness
from bench.placeorder import ADDRESS
from bench.seeding import Carts, Product, seed_products
from bench.view import CONFIRMED, MeshView

NAME = "chaos"
SUMMARY = "checkout under load while services are killed, NATS is down, PostgreSQL restarts, payments time out"
STEPS = 4
GRACE_S = 3.0
# The mesh of a chaos run: a dead process's checkouts are resumed within seconds, as in the
# order crash test (production: COMMERCE_ORDER_SAGA_LEASE_SECONDS 30).
SETTINGS = {"order_saga_lease_seconds": 5.0, "order_recovery_interval_seconds": 1.0,
            "order_recovery_idle_seconds": 2.0, "payment_provider_timeout_seconds": 3.0}
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.UNAUTHENTICATED}


@dataclass(frozen=True)
class Options:
    short: bool = False

    @property
    def rate(self) -> float:  # orders started per second
        return 8.0 if self.short else 15.0

    @property
    def gap_s(self) -> float:  # steady load before the first fault, between faults, after the last
        return 4.0 if self.short else 10.0

    @property
    def nats_down_s(self) -> float:
        return 5.0 if self.short else 30.0

    @property
    def provider_down_s(self) -> float:
        return 4.0 if self.short else 15.0

    @property
    def terminal_after_s(self) -> float:  # every order terminal this long after the last fault
        return 30.0 if self.short else 60.0


@dataclass
class Fault:
    name: str
    started: float
    healed: float = 0.0  # when the process was ready again / the outage ended
    failures: int = 0  # calls that failed in its window
    last_failure: float = 0.0

    @property
    def window_end(self) -> float:
        return self.healed + GRACE_S

    @property
    def heal_s(self) -> float:
        return max(self.healed, self.last_failure) - self.started


@dataclass
class Call:
    began: float
    ended: float
    error: str  # "" when answered


@dataclass
class Shopper:
    request_id: str
    calls: list[Call] = field(default_factory=list)
    outcome: str = ""  # CONFIRMED, FAILED:<reason>, PENDING..., UNANSWERED


class Chaos:
    def __init__(self, harness: Harness, options: Options) -> None:
        self.harness, self.options = harness, options
        self.mesh = harness.mesh
        self.faults: list[Fault] = []
        self.shoppers: list[Shopper] = []
        self.load_on = True

    # -- load -----------------------------------------------------------------------------------

    async def _shop(self, stub: order_pb2_grpc.OrderServiceStub, token: str) -> None:
        shopper = Shopper(f"chaos-{uuid.uuid4().hex}")
        self.shoppers.append(shopper)
        request = order_pb2.PlaceOrderRequest(request_id=shopper.request_id, shipping_address=ADDRESS,
                                              payment_token="tok_sandbox_ok", email="shopper@chaos.test")
        deadline = time.monotonic() + 180
        while True:
            began = time.monotonic()
            try:
                reply = await stub.PlaceOrder(request, metadata=(("authorization", f"Bearer {token}"),), timeout=15)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:  # a checkout that failed, answered
                    shopper.calls.append(Call(began, time.monotonic(), ""))
                    shopper.outcome = "FAILED"
                    return
                shopper.calls.append(Call(began, time.monotonic(), f"{error.code().name}: {error.details()}"))
                if error.code() not in RETRYABLE or time.monotonic() > deadline:
                    shopper.outcome = "UNANSWERED"
                    return
                await asyncio.sleep(0.5)  # then the same request_id again
                continue
            shopper.calls.append(Call(began, time.monotonic(), ""))
            shopper.outcome = order_pb2.OrderStatus.Name(reply.order.status).removeprefix("ORDER_STATUS_")
            return

    async def load(self, carts: Carts) -> None:
        tokens = carts.take()
        running: set[asyncio.Task[None]] = set()
        async with grpc.aio.insecure_channel(self.mesh.edge_address) as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            due = time.monotonic()
            while self.load_on:
                token = next(tokens, None)
                if token is None:
                    raise BenchError("ran out of seeded carts: seed more")
                task = asyncio.create_task(self._shop(stub, token))
                running.add(task)
                task.add_done_callback(running.discard)
                due += 1 / self.options.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if running:
                await asyncio.gather(*running)

    # -- faults ---------------------------------------------------------------------------------

    async def _ready_again(self, name: str, since: float) -> float:
        supervisor = self.mesh.supervisor
        assert supervisor is not None
        limit = time.monotonic() + 120
        while time.monotonic() < limit:
            for entry in supervisor.history:
                if entry.name == name and entry.exited_at >= since - 0.5 and entry.ready_at is not None:
                    return entry.ready_at
            await asyncio.sleep(0.1)
        raise BenchError(f"{name} was not ready again 120s after the fault")

    async def kill(self, name: str) -> None:
        fault = Fault(f"{name} SIGKILL mid-saga", time.monotonic())
        self.faults.append(fault)
        self.mesh.processes[name].signal(signal.SIGKILL)
        fault.healed = await self._ready_again(name, fault.started)

    async def nats_down(self) -> None:
        nats, supervisor = self.mesh.nats, self.mesh.supervisor
        assert nats is not None and nats.process is not None and supervisor is not None
        fault = Fault(f"NATS down {self.options.nats_down_s:.0f} s", time.monotonic())
        self.faults.append(fault)
        supervisor.hold("nats")
        nats.process.terminate()
        await asyncio.sleep(self.options.nats_down_s)
        supervisor.release("nats")
        fault.healed = await self._ready_again("nats", fault.started)

    async def postgres_restart(self) -> None:
        postgres = self.mesh.postgres
        assert postgres is not None and postgres.process is not None
        fault = Fault("PostgreSQL restart", time.monotonic())
        self.faults.append(fault)
        postgres.process.send_signal(signal.SIGINT)  # fast shutdown; the supervisor starts it again
        fault.healed = await self._ready_again("postgres", fault.started)

    async def provider_timeouts(self) -> None:
        switch = self.mesh.settings.payment_sandbox_outage_file
        assert switch is not None
        fault = Fault(f"payment provider timing out {self.options.provider_down_s:.0f} s", time.monotonic())
        self.faults.append(fault)
        switch.touch()
        await asyncio.sleep(self.options.provider_down_s)
        switch.unlink()
        # a charge begun in the outage is answered after the provider's timeout, then retried
        fault.healed = time.monotonic() + self.mesh.settings.payment_provider_timeout_seconds

    async def faults_in_turn(self) -> None:
        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: self.kill("order"), lambda: self.kill("payment"), lambda: self.kill("catalog"),
            self.nats_down, self.postgres_restart, self.provider_timeouts]
        await asyncio.sleep(self.options.gap_s)
        for step in steps:
            await step()
            self.harness.progress.note(f"  fault: {self.faults[-1].name}, healed "
                                       f"{self.faults[-1].healed - self.faults[-1].started:.1f}s after it began")
            await asyncio.sleep(max(0.0, self.faults[-1].window_end - time.monotonic()) + self.options.gap_s)
        self.load_on = False

    # -- after ----------------------------------------------------------------------------------

    def failures_outside(self) -> list[tuple[Call, str]]:
        """Failed calls (and checkouts answered FAILED) that overlap no fault's window."""
        outside = []
        for shopper in self.shoppers:
            for n, call in enumerate(shopper.calls):
                failed = call.error or (shopper.outcome == "FAILED" and n == len(shopper.calls) - 1)
                if not failed:
                    continue
                windows = [f for f in self.faults if call.ended >= f.started and call.began <= f.window_end]
                for fault in windows:
                    fault.failures += 1
                    fault.last_failure = max(fault.last_failure, call.ended)
                if not windows:
                    outside.append((call, call.error or f"checkout FAILED ({shopper.request_id})"))
        return outside

    async def not_terminal_after(self, view: MeshView) -> tuple[int, float]:
        """Orders whose saga is not done ``terminal_after_s`` after the last fault healed (waiting
        until then at most), and when they were all done, seconds after the last fault."""
        last = max(f.window_end - GRACE_S for f in self.faults)
        database = self.harness.database_of("order")
        query = f"SELECT count(*) FROM {view.schema}.orders WHERE saga_step <> 'DONE'"
        while True:
            left = int((await view.observer.fetch(database, query))[0][0])
            if left == 0 or time.monotonic() >= last + self.options.terminal_after_s:
                return left, time.monotonic() - last
            await asyncio.sleep(0.5)


async def _money(view: MeshView, harness: Harness) -> tuple[int, int]:
    """(orders charged more than once or more than their total, orders charged net without being confirmed)."""
    orders = {r["order_id"]: (r["status"], int(r["total_minor"])) for r in await view.observer.fetch(
        harness.database_of("order"), f"SELECT order_id, status, total_minor FROM {view.schema}.orders")}
    taken: dict[str, list[tuple[int, int]]] = {}
    for r in await view.observer.fetch(harness.database_of("payment"),
                                       f"SELECT order_id, captured_minor, refunded_minor FROM {view.schema}.payments"):
        taken.setdefault(r["order_id"], []).append((int(r["captured_minor"]), int(r["refunded_minor"])))
    twice = sum(1 for o, ps in taken.items() if sum(1 for c, _ in ps if c) > 1
                or sum(c for c, _ in ps) > orders.get(o, ("", 0))[1])
    unconfirmed = sum(1 for o, ps in taken.items() if orders.get(o, ("", 0))[0] != CONFIRMED
                      and sum(c - r for c, r in ps) > 0)
    return twice, unconfirmed


async def _oversold(view: MeshView, harness: Harness, products: list[Product]) -> int:
    """Units sold beyond what there was: below zero, or confirmed beyond the stock given."""
    stock = {r["product_id"]: int(r["on_hand"]) for r in await view.observer.fetch(
        harness.database_of("catalog"), f"SELECT product_id, on_hand FROM {view.schema}.stock")}
    sold = {r["product_id"]: int(r["units"]) for r in await view.observer.fetch(
        harness.database_of("order"), f"SELECT l.product_id, sum(l.quantity) AS units FROM {view.schema}.order_lines l "
        f"JOIN {view.schema}.orders o USING (order_id) WHERE o.status = $1 GROUP BY l.product_id", CONFIRMED)}
    return sum(max(0, sold.get(p.product_id, 0) - p.on_hand) + max(0, -stock.get(p.product_id, 0))
               for p in products)


def _events_rows(checks: list[Check]) -> list[tuple[str, str, bool]]:
    rows = []
    for check in checks:
        if check.label.startswith("events consumed once by "):
            rows.append((f"events published vs consumed once by {check.label.removeprefix('events consumed once by ')}",
                         check.detail, check.passed))
    return rows


async def _run(harness: Harness, options: Options) -> dict[str, Any]:
    mesh = harness.mesh
    supervisor = mesh.supervise()
    chaos = Chaos(harness, options)
    products = await harness.astep("seeding two products",
                                   seed_products(harness, 2), lambda p: "done")
    load_s = options.gap_s * 8 + options.nats_down_s + options.provider_down_s + 60
    carts = Carts()
    await harness.astep(f"seeding {int(load_s * options.rate)} guests with a cart line",
                        carts.seed(harness, products, int(load_s * options.rate)), lambda n: f"{n} ready")
    started = time.monotonic()
    await harness.astep(f"{options.rate:.0f} orders/s through Envoy while faults come one after another",
                        asyncio.gather(chaos.load(carts), chaos.faults_in_turn()),
                        lambda _: f"{len(chaos.shoppers)} orders in {time.monotonic() - started:.0f}s")
    outside = chaos.failures_outside()
    view = await MeshView.open(harness)
    try:
        not_terminal, _ = await harness.astep(
            f"waiting for every order to be terminal (at most {options.terminal_after_s:.0f}s after the last fault)",
            chaos.not_terminal_after(view), lambda r: f"{r[0]} not terminal, {r[1]:.1f}s after the last fault")
        drained = await view.drain()
        events = await view.stream.events()
        checks = await Consistency(view).run(products, events)
        twice, unconfirmed = await _money(view, harness)
        oversold = await _oversold(view, harness, products)
        unpublished = {service: int((await view.observer.fetch(harness.database_of(service),
                                                                f"SELECT count(*) FROM {view.schema}.outbox"))[0][0])
                       for service in ("catalog", "order", "payment")}
        outcomes = await view.order_statuses()
    finally:
        await view.close()
    unanswered = sum(1 for shopper in chaos.shoppers if shopper.outcome == "UNANSWERED")
    rows: list[tuple[str, str, bool]] = [
        ("orders attempted", str(len(chaos.shoppers)), True),
        ("confirmed", str(outcomes.get("CONFIRMED", 0)), True),
        ("failed (answered FAILED: a peer or the provider unreachable during a fault)",
         str(outcomes.get("FAILED", 0)), True),
        ("never answered (gave up after 180 s of retries)", str(unanswered), unanswered == 0),
        ("oversold units", str(oversold), oversold == 0),
        ("orders charged twice", str(twice), twice == 0),
        ("orders charged without a confirmed order", str(unconfirmed), unconfirmed == 0),
        (f"orders not terminal {options.terminal_after_s:.0f} s after the last fault", str(not_terminal),
         not_terminal == 0),
        *_events_rows(checks),
        ("every event consumed before the checks", "yes" if drained.complete else drained.note, drained.complete),
        ("outbox rows never published (catalog, order, payment)", str(sum(unpublished.values())) + (
            f" {unpublished}" if any(unpublished.values()) else ""), not any(unpublished.values())),
        ("calls failed outside a fault window", str(len(outside)), not outside),
        ("calls failed inside fault windows (retried by the shopper)", str(sum(f.failures for f in chaos.faults)),
         True),
        *((f"heal time: {f.name}", f"{f.heal_s:.1f} s ({f.failures} failed calls)", True) for f in chaos.faults),
    ]
    failed_checks = [c for c in checks if not c.passed]
    print("\n| chaos run | result |\n|---|---|")
    for label, value, ok in rows:
        print(f"| {label} | {value}{'' if ok else '  **FAIL**'} |")
    for check in checks:
        print(check.line())
    for _, what in outside[:5]:
        print(f"  outside any fault window: {what}")
    restarts = {name: member.restarts for name, member in supervisor.members.items() if member.restarts}
    failed = [label for label, _, ok in rows if not ok] + [c.label for c in failed_checks]
    passed = sum(ok for _, _, ok in rows) + len(checks) - len(failed_checks)
    print(f"\nchaos: {passed} passed, {len(failed)} failed", flush=True)
    return {"short": options.short, "rate": options.rate, "rows": [{"measure": r[0], "value": r[1], "ok": r[2]}
                                                                   for r in rows],
            "checks": [c.as_json() for c in checks], "restarts": restarts,
            "failed": "; ".join(failed) if failed else None}


def run(harness: Harness, options: Options) -> dict[str, Any]:
    return asyncio.run(_run(harness, options))
