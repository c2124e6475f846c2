"""Is the shop's state right after the whole run (every consumer drained)? Read straight from
the services' tables (tenant schema of the bench) and from JetStream:

- no order left in flight (in a status other than those a checkout ends in);
- stock never oversold (on_hand, reserved, on_hand - reserved all >= 0), and on_hand of each
  seeded product dropped by exactly the units of CONFIRMED orders;
- reservations (id = order id) of CONFIRMED orders COMMITTED, none HELD for a settled order;
- each CONFIRMED order has exactly one payment, captured = order total, nothing refunded
  (a zero-total order may have none); FAILED orders have nothing captured net;
- each durable consumer's inbox holds exactly the stream's events of its subjects, once;
- one confirmation email per CONFIRMED order, none for any other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.jetstream import Event
from bench.seeding import Product
from bench.view import CONFIRMED, SETTLED, MeshView

FAILED = "FAILED"


@dataclass(frozen=True)
class Check:
    label: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.label}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {"check": self.label, "passed": self.passed, "detail": self.detail}


def _some(ids: list[str]) -> str:
    return "" if not ids else " (e.g. " + ", ".join(sorted(ids)[:3]) + ")"


class Consistency:
    def __init__(self, view: MeshView) -> None:
        self.view = view
        self.schema = view.schema
        h = view.harness
        self.db = {name: h.database_of(name) for name in ("order", "catalog", "payment", "notifications")}

    async def _fetch(self, service: str, query: str, *args: Any) -> list[Any]:
        return await self.view.observer.fetch(self.db[service], query.replace("{s}", self.schema), *args)

    async def run(self, products: list[Product], events: list[Event]) -> list[Check]:
        orders = {r["order_id"]: (r["status"], int(r["total_minor"]))
                  for r in await self._fetch("order", "SELECT order_id, status, total_minor FROM {s}.orders")}
        confirmed = {o for o, (status, _) in orders.items() if status == CONFIRMED}
        return [self._settled(orders), *await self._stock(products), await self._reservations(orders, confirmed),
                *await self._payments(orders, confirmed), *await self._events(events), await self._emails(confirmed)]

    def _settled(self, orders: dict[str, tuple[str, int]]) -> Check:
        statuses = Counter(status for status, _ in orders.values())
        stuck = [o for o, (status, _) in orders.items() if status not in SETTLED]
        return Check("every order settled", not stuck, f"{len(orders)} orders: "
                     + ", ".join(f"{n} {s}" for s, n in statuses.most_common()) + _some(stuck))

    async def _stock(self, products: list[Product]) -> list[Check]:
        rows = await self._fetch("catalog", "SELECT product_id, on_hand, reserved FROM {s}.stock")
        negative = [r["product_id"] for r in rows
                    if r["on_hand"] < 0 or r["reserved"] < 0 or r["on_hand"] - r["reserved"] < 0]
        sold = {r["product_id"]: int(r["units"]) for r in await self._fetch(
            "order", "SELECT l.product_id, sum(l.quantity) AS units FROM {s}.order_lines l "
            "JOIN {s}.orders o USING (order_id) WHERE o.status = $1 GROUP BY l.product_id", CONFIRMED)}
        on_hand = {r["product_id"]: int(r["on_hand"]) for r in rows}
        wrong = [p.product_id for p in products
                 if p.on_hand - on_hand.get(p.product_id, 0) != sold.get(p.product_id, 0)]
        drop = sum(p.on_hand - on_hand.get(p.product_id, 0) for p in products)
        bought = sum(sold.get(p.product_id, 0) for p in products)
        return [Check("no oversell", not negative, f"{len(rows)} stock rows, {len(negative)} with on_hand, reserved "
                      f"or on_hand - reserved below 0{_some(negative)}"),
                Check("stock dropped by the units confirmed", not wrong,
                      f"{len(products)} seeded products: on_hand down {drop} units, confirmed orders bought "
                      f"{bought}; {len(wrong)} products differ{_some(wrong)}")]

    async def _reservations(self, orders: dict[str, tuple[str, int]], confirmed: set[str]) -> Check:
        state = {r["reservation_id"]: r["state"] for r in await self._fetch(
            "catalog", "SELECT reservation_id, state FROM {s}.reservations")}
        uncommitted = [o for o in confirmed if state.get(o) != "COMMITTED"]
        # held for an order that settled, or that does not exist (only an order in flight may hold stock)
        held = [r for r, s in state.items() if s == "HELD" and (r not in orders or orders[r][0] in SETTLED)]
        return Check("reservations committed, none held", not uncommitted and not held,
                     f"{len(state)} reservations; {len(uncommitted)} of {len(confirmed)} confirmed orders not "
                     f"COMMITTED{_some(uncommitted)}; {len(held)} HELD for settled or unknown orders{_some(held)}")

    async def _payments(self, orders: dict[str, tuple[str, int]], confirmed: set[str]) -> list[Check]:
        by_order: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for r in await self._fetch("payment", "SELECT order_id, captured_minor, refunded_minor FROM {s}.payments"):
            by_order[r["order_id"]].append((int(r["captured_minor"]), int(r["refunded_minor"])))
        wrong = []
        for order_id in confirmed:
            payments, total = by_order.get(order_id, []), orders[order_id][1]
            if not (payments == [(total, 0)] or (total == 0 and not payments)):
                wrong.append(order_id)
        failed = [o for o, (status, _) in orders.items() if status == FAILED]
        kept = [o for o in failed if sum(c - r for c, r in by_order.get(o, [])) != 0]
        return [Check("one full capture per confirmed order", not wrong,
                      f"{len(confirmed)} confirmed orders, {len(wrong)} without exactly one payment captured in full "
                      f"and not refunded{_some(wrong)}"),
                Check("nothing kept from failed orders", not kept,
                      f"{len(failed)} failed orders, {len(kept)} with money captured net{_some(kept)}")]

    async def _events(self, events: list[Event]) -> list[Check]:
        seen: dict[str, Counter[str]] = defaultdict(Counter)
        for database, schema in await self.view.observer.inbox_tables():
            for r in await self.view.observer.fetch(database, f"SELECT consumer, event_id FROM {schema}.inbox"):
                seen[r["consumer"]][r["event_id"]] += 1
        checks = []
        for durable in await self.view.stream.durables():
            expected = {e.event_id for e in events if durable.wants(e.subject)}
            got = seen.get(durable.name, Counter())
            missing, extra = expected - set(got), set(got) - expected
            twice = [e for e, n in got.items() if n > 1]
            checks.append(Check(f"events consumed once by {durable.name}", not (missing or extra or twice),
                                f"{len(expected)} events of {', '.join(durable.subjects)} in the stream, "
                                f"{len(missing)} missing{_some(list(missing))}, "
                                f"{len(extra)} extra{_some(list(extra))}, "
                                f"{len(twice)} twice{_some(twice)}"))
        return checks

    async def _emails(self, confirmed: set[str]) -> Check:
        try:
            sent = {r["order_id"]: int(r["n"]) for r in await self._fetch(
                "notifications", "SELECT order_id, count(*) AS n FROM {s}.sent_emails WHERE kind = 'confirmed' "
                "GROUP BY order_id")}
        except asyncpg.UndefinedTableError:  # the worker makes the tenant's schema on its first event
            sent = {}
        not_once = [o for o in confirmed if sent.get(o, 0) != 1]
        stray = [o for o in sent if o not in confirmed]
        return Check("one email per confirmed order", not not_once and not stray,
                     f"{sum(sent.values())} confirmation emails for {len(confirmed)} confirmed orders; "
                     f"{len(not_once)} orders without exactly one{_some(not_once)}, {len(stray)} for other "
                     f"orders{_some(stray)}")
