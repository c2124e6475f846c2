"""Messages and the cart's domain: priced carts out, the catalog's products in."""

from __future__ import annotations

from datetime import UTC

from commerce.cart.v1 import cart_pb2 as pb
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.common.v1 import money_pb2

from services.cart.domain.catalog import EPOCH, Money, Product, Status, weight_grams
from services.cart.domain.pricing import PricedCart, PricedLine
from services.runtime.protos import EnumNames, money_pb

_STATUSES = {number: Status(name) for number, name in EnumNames(cpb.ProductStatus, "PRODUCT_STATUS_").names.items()}


def product_of(message: cpb.Product) -> Product:
    """A catalog product (from GetProduct or an event) as the cart keeps it."""
    return Product(message.product_id, message.sku, message.title,
                   Money(message.price.currency_code, message.price.amount_minor),
                   _STATUSES.get(message.status, Status.UNSPECIFIED), weight_grams(message.attributes),
                   message.update_time.ToDatetime(UTC) if message.HasField("update_time") else EPOCH)


def money_of(money: Money) -> money_pb2.Money:
    return money_pb(money.currency_code, money.amount_minor)


def line_pb(line: PricedLine) -> pb.CartLine:
    message = pb.CartLine(product_id=line.line.product_id, quantity=line.line.quantity,
                          unavailable_reason=line.unavailable_reason)
    if line.product is not None:
        message.sku, message.title = line.product.sku, line.product.title
        message.unit_weight_grams = line.product.weight_grams
    total = line.line_total
    if total is not None and line.product is not None:
        message.unit_price.CopyFrom(money_of(line.product.price))
        message.line_total.CopyFrom(money_of(total))
    return message


def cart_pb(cart: PricedCart) -> pb.Cart:
    message = pb.Cart(
        name=f"carts/{cart.cart_id}" if cart.cart_id else "", cart_id=cart.cart_id, customer_id=cart.customer_id,
        lines=[line_pb(line) for line in cart.lines], subtotal=money_of(cart.subtotal),
        currency_code=cart.currency_code, item_count=cart.item_count,
        unavailable_lines=[line_pb(line) for line in cart.unavailable],
    )
    if cart.update_time is not None:
        message.update_time.FromDatetime(cart.update_time)
    return message
