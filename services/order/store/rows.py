"""Order rows (as SQLAlchemy or asyncpg hand them) -> the aggregate and its saga state."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.order.domain.order import Address, Order, OrderLine, ReturnInfo, ReturnLine, Shipment, Totals
from services.order.domain.saga import SagaState, Step
from services.order.domain.status import OrderStatus


def _json(value: Any) -> Any:
    """jsonb as asyncpg (text) or SQLAlchemy (decoded) returns it."""
    return json.loads(value) if isinstance(value, str) else value


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def shipment_of(data: dict[str, Any] | None) -> Shipment | None:
    if not data:
        return None
    ship_time = _time(data["ship_time"])
    assert ship_time is not None
    return Shipment(data["carrier"], data["tracking_number"], ship_time, _time(data.get("deliver_time")))


def shipment_json(s: Shipment | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"carrier": s.carrier, "tracking_number": s.tracking_number, "ship_time": s.ship_time.isoformat(),
            "deliver_time": s.deliver_time.isoformat() if s.deliver_time else None}


def return_of(data: dict[str, Any] | None) -> ReturnInfo | None:
    if not data:
        return None
    request_time = _time(data["request_time"])
    assert request_time is not None
    return ReturnInfo(data["reason"], tuple(ReturnLine(p, q) for p, q in data["lines"]),
                      data["refund_amount_minor"], request_time, _time(data.get("receive_time")))


def return_json(r: ReturnInfo | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"reason": r.reason, "lines": [[line.product_id, line.quantity] for line in r.lines],
            "refund_amount_minor": r.refund_amount_minor, "request_time": r.request_time.isoformat(),
            "receive_time": r.receive_time.isoformat() if r.receive_time else None}


def order_of(row: Mapping[Any, Any], lines: Iterable[tuple[str, str, str, int, int]]) -> Order:
    """``lines``: (product_id, sku, title, quantity, unit_price_minor) in position order."""
    return Order(
        order_id=row["order_id"], request_id=row["request_id"], customer_id=row["customer_id"], email=row["email"],
        status=OrderStatus(row["status"]), lines=tuple(OrderLine(*line) for line in lines),
        address=Address(**_json(row["address"])),
        totals=Totals(row["currency_code"], row["subtotal_minor"], row["shipping_minor"], row["tax_minor"]),
        create_time=row["create_time"], update_time=row["update_time"], payment_id=row["payment_id"],
        failure_reason=row["failure_reason"], cancel_reason=row["cancel_reason"],
        shipment=shipment_of(_json(row["shipment"])), return_info=return_of(_json(row["return_info"])),
    )


def saga_of(row: Mapping[Any, Any]) -> SagaState:
    return SagaState(Step(row["saga_step"]), row["saga_attempts"], row["cancel_requested"], row["cancelled_by"])
