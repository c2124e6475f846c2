"""Priced carts -> messages, and nothing else."""

from __future__ import annotations

from commerce.cart.v1 import cart_pb2 as pb
from commerce.common.v1 import money_pb2

from services.cart.domain.catalog import Money
from services.cart.domain.pricing import PricedCart, PricedLine


def money_pb(money: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=money.currency_code, amount_minor=money.amount_minor)


def line_pb(line: PricedLine) -> pb.CartLine:
    message = pb.CartLine(product_id=line.line.product_id, quantity=line.line.quantity,
                          unavailable_reason=line.unavailable_reason)
    if line.product is not None:
        message.sku, message.title = line.product.sku, line.product.title
    total = line.line_total
    if total is not None and line.product is not None:
        message.unit_price.CopyFrom(money_pb(line.product.price))
        message.line_total.CopyFrom(money_pb(total))
    return message


def cart_pb(cart: PricedCart) -> pb.Cart:
    message = pb.Cart(
        name=f"carts/{cart.cart_id}" if cart.cart_id else "", cart_id=cart.cart_id, customer_id=cart.customer_id,
        lines=[line_pb(line) for line in cart.lines], subtotal=money_pb(cart.subtotal),
        currency_code=cart.currency_code, item_count=cart.item_count,
        unavailable_lines=[line_pb(line) for line in cart.unavailable],
    )
    if cart.update_time is not None:
        message.update_time.FromDatetime(cart.update_time)
    return message
