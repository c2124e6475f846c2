"""The order aggregate: what was bought, where it goes, what it costs, where it is
in its life. Amounts are integer minor units of one currency."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from services.order.domain.status import OrderStatus, check_move


@dataclass(frozen=True)
class Address:
    recipient: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country_code: str


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    title: str
    quantity: int
    unit_price_minor: int

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True)
class Totals:
    currency_code: str
    subtotal_minor: int
    shipping_minor: int
    tax_minor: int

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor + self.shipping_minor + self.tax_minor


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    ship_time: datetime
    deliver_time: datetime | None = None


@dataclass(frozen=True)
class ReturnLine:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class ReturnInfo:
    reason: str
    lines: tuple[ReturnLine, ...]
    refund_amount_minor: int
    request_time: datetime
    receive_time: datetime | None = None


@dataclass(frozen=True)
class Order:
    order_id: str
    request_id: str
    customer_id: str
    email: str
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    address: Address
    totals: Totals
    create_time: datetime
    update_time: datetime
    payment_id: str = ""
    failure_reason: str = ""
    cancel_reason: str = ""
    shipment: Shipment | None = None
    return_info: ReturnInfo | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def moved(self, target: OrderStatus, **changes: object) -> Order:
        """The order in ``target`` status; FAILED_PRECONDITION INVALID_ORDER_STATUS when not allowed."""
        check_move(self.status, target)
        return replace(self, status=target, **changes)  # type: ignore[arg-type]


def returned_value(lines: tuple[OrderLine, ...], returned: tuple[ReturnLine, ...]) -> int:
    """Value of the returned units at the prices charged (what a received return refunds)."""
    prices = {line.product_id: line.unit_price_minor for line in lines}
    return sum(prices[r.product_id] * r.quantity for r in returned)
