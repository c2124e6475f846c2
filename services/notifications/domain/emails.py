"""What the customer is told when their order is confirmed, cancelled or refunded.
Pure: order events in, plain email content out."""

from __future__ import annotations

from dataclasses import dataclass

from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_events_pb2, order_pb2
from google.protobuf.message import Message

CONFIRMED, CANCELLED, REFUNDED = "confirmed", "cancelled", "refunded"
KINDS = (CONFIRMED, CANCELLED, REFUNDED)
# ISO 4217 currencies whose minor unit is not 1/100.
_EXPONENT = {"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
             "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
             "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3}


@dataclass(frozen=True)
class Email:
    kind: str
    order_id: str
    to: str
    subject: str
    body: str


def format_money(money: money_pb2.Money) -> str:
    exponent = _EXPONENT.get(money.currency_code, 2)
    sign = "-" if money.amount_minor < 0 else ""
    units, minor = divmod(abs(money.amount_minor), 10 ** exponent)
    amount = f"{units}.{minor:0{exponent}d}" if exponent else str(units)
    return f"{sign}{amount} {money.currency_code}"


def _lines(order: order_pb2.Order) -> list[str]:
    lines = [f"  {line.quantity} x {line.title or line.sku}  {format_money(line.line_total)}" for line in order.lines]
    totals = [("Subtotal", order.subtotal), ("Shipping", order.shipping), ("Tax", order.tax), ("Total", order.total)]
    lines += [f"  {label}: {format_money(value)}" for label, value in totals if value.currency_code]
    return lines


def _body(greeting: str, order: order_pb2.Order, *details: str) -> str:
    parts = [greeting, "", *details, f"Order: {order.order_id}", *_lines(order), "", "Thank you for shopping with us."]
    return "\n".join(parts) + "\n"


def email_for(event: Message) -> Email | None:
    """The email an order event calls for, or None (no address, or not an event we mail about)."""
    if isinstance(event, order_events_pb2.OrderConfirmed):
        order = event.order
        kind, subject = CONFIRMED, f"Your order {order.order_id} is confirmed"
        body = _body("Your order is confirmed and will be prepared for shipping.", order)
    elif isinstance(event, order_events_pb2.OrderCancelled):
        order = event.order
        kind, subject = CANCELLED, f"Your order {order.order_id} was cancelled"
        reason = [f"Reason: {order.cancel_reason}"] if order.cancel_reason else []
        body = _body("Your order was cancelled. Any payment taken is refunded.", order, *reason)
    elif isinstance(event, order_events_pb2.OrderRefunded):
        order = event.order
        kind = REFUNDED
        subject = f"Refund of {format_money(event.amount)} for your order {order.order_id}"
        body = _body(f"We have refunded {format_money(event.amount)} to your payment method.", order)
    else:
        return None
    if not order.email:
        return None
    return Email(kind, order.order_id, order.email, subject, body)
