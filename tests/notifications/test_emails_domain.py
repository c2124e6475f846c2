"""What the emails say (pure domain, no I/O)."""

from __future__ import annotations

from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_events_pb2, order_pb2

from services.notifications.domain.emails import CONFIRMED, email_for, format_money


def test_money_is_shown_in_the_currency_s_own_minor_units() -> None:
    assert format_money(money_pb2.Money(currency_code="EUR", amount_minor=2990)) == "29.90 EUR"
    assert format_money(money_pb2.Money(currency_code="EUR", amount_minor=5)) == "0.05 EUR"
    assert format_money(money_pb2.Money(currency_code="JPY", amount_minor=1500)) == "1500 JPY"
    assert format_money(money_pb2.Money(currency_code="KWD", amount_minor=1234)) == "1.234 KWD"
    assert format_money(money_pb2.Money(currency_code="USD", amount_minor=-150)) == "-1.50 USD"


def test_an_order_without_an_email_address_sends_nothing() -> None:
    assert email_for(order_events_pb2.OrderConfirmed(order=order_pb2.Order(order_id="o1"))) is None


def test_events_that_are_not_mailed_about_send_nothing() -> None:
    order = order_pb2.Order(order_id="o1", email="a@b.example")
    assert email_for(order_events_pb2.OrderShipped(order=order)) is None
    assert email_for(order_events_pb2.OrderPlaced(order=order)) is None


def test_a_confirmation_is_addressed_to_the_order_s_email() -> None:
    email = email_for(order_events_pb2.OrderConfirmed(order=order_pb2.Order(order_id="o1", email="a@b.example")))
    assert email is not None
    assert (email.kind, email.to, email.order_id) == (CONFIRMED, "a@b.example", "o1")
