"""Messages <-> domain objects, and nothing else."""

from __future__ import annotations

from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import inventory_pb2

from services.catalog.domain.product import Money, Product, ProductInput
from services.catalog.domain.reservation import Line, Reservation, ReservationState
from services.catalog.domain.stock import StockLevel
from services.runtime.protos import EnumNames, money_pb

_STATUSES = EnumNames(pb.ProductStatus, "PRODUCT_STATUS_")
_RESERVATION_STATES = {
    ReservationState.HELD: inventory_pb2.RESERVATION_STATE_HELD,
    ReservationState.COMMITTED: inventory_pb2.RESERVATION_STATE_COMMITTED,
    ReservationState.RELEASED: inventory_pb2.RESERVATION_STATE_RELEASED,
    ReservationState.EXPIRED: inventory_pb2.RESERVATION_STATE_EXPIRED,
}


def status_name(number: int) -> str:
    """"ACTIVE" for PRODUCT_STATUS_ACTIVE; an unknown number (open enums) as its digits."""
    return _STATUSES.name(number)


def product_input(message: pb.Product) -> ProductInput:
    price = Money(message.price.currency_code, message.price.amount_minor) if message.HasField("price") else None
    return ProductInput(
        sku=message.sku, title=message.title, description=message.description, category=message.category,
        attributes=dict(message.attributes), price=price, status=status_name(message.status),
    )


def product_pb(product: Product) -> pb.Product:
    f = product.fields
    message = pb.Product(
        name=f"products/{product.product_id}", product_id=product.product_id, sku=f.sku, title=f.title,
        description=f.description, category=f.category, attributes=f.attributes,
        price=money_pb(f.price.currency_code, f.price.amount_minor), status=_STATUSES.number(f.status.value),
    )
    message.create_time.FromDatetime(product.create_time)
    message.update_time.FromDatetime(product.update_time)
    return message


def stock_pb(level: StockLevel) -> pb.StockLevel:
    message = pb.StockLevel(product_id=level.product_id, on_hand=level.on_hand, reserved=level.reserved,
                            available=level.available)
    message.update_time.FromDatetime(level.update_time)
    return message


def line_pb(line: Line) -> inventory_pb2.ReservationLine:
    return inventory_pb2.ReservationLine(product_id=line.product_id, quantity=line.quantity)


def reservation_state_pb(state: ReservationState) -> inventory_pb2.ReservationState:
    return _RESERVATION_STATES[state]


def reservation_pb(reservation: Reservation) -> inventory_pb2.Reservation:
    message = inventory_pb2.Reservation(reservation_id=reservation.reservation_id,
                                        lines=[line_pb(line) for line in reservation.lines],
                                        state=reservation_state_pb(reservation.state))
    message.expire_time.FromDatetime(reservation.expire_time)
    return message
