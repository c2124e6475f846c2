"""Domain objects -> messages (and the few messages -> domain objects), nothing else."""

from __future__ import annotations

from commerce.order.v1 import order_pb2 as pb

from services.order.domain.order import Address, Order, ReturnLine
from services.runtime.protos import EnumNames, money_pb

_STATUSES = EnumNames(pb.OrderStatus, "ORDER_STATUS_")


def status_name(number: int) -> str:
    return _STATUSES.name(number)


def address_of(message: pb.PlaceOrderRequest) -> Address | None:
    if not message.HasField("shipping_address"):
        return None
    a = message.shipping_address
    return Address(a.recipient, a.line1, a.line2, a.city, a.region, a.postal_code, a.country_code)


def return_lines(message: pb.RequestReturnRequest) -> list[ReturnLine]:
    return [ReturnLine(line.product_id, line.quantity) for line in message.lines]


def order_pb(order: Order) -> pb.Order:
    t = order.totals
    c = t.currency_code
    a = order.address
    message = pb.Order(
        name=f"orders/{order.order_id}", order_id=order.order_id, request_id=order.request_id,
        customer_id=order.customer_id, status=_STATUSES.number(order.status.value),
        lines=[pb.OrderLine(product_id=line.product_id, sku=line.sku, title=line.title, quantity=line.quantity,
                            unit_price=money_pb(c, line.unit_price_minor),
                            line_total=money_pb(c, line.line_total_minor))
               for line in order.lines],
        shipping_address=pb.Address(recipient=a.recipient, line1=a.line1, line2=a.line2, city=a.city,
                                    region=a.region, postal_code=a.postal_code, country_code=a.country_code),
        subtotal=money_pb(c, t.subtotal_minor), shipping=money_pb(c, t.shipping_minor), tax=money_pb(c, t.tax_minor),
        total=money_pb(c, t.total_minor), payment_id=order.payment_id, failure_reason=order.failure_reason,
        email=order.email, cancel_reason=order.cancel_reason,
    )
    message.create_time.FromDatetime(order.create_time)
    message.update_time.FromDatetime(order.update_time)
    if order.shipment is not None:
        s = order.shipment
        message.shipment.carrier = s.carrier
        message.shipment.tracking_number = s.tracking_number
        message.shipment.ship_time.FromDatetime(s.ship_time)
        if s.deliver_time is not None:
            message.shipment.deliver_time.FromDatetime(s.deliver_time)
    if order.return_info is not None:
        r = order.return_info
        message.return_info.reason = r.reason
        message.return_info.lines.extend(pb.ReturnLine(product_id=line.product_id, quantity=line.quantity)
                                         for line in r.lines)
        message.return_info.refund_amount.CopyFrom(money_pb(c, r.refund_amount_minor))
        message.return_info.request_time.FromDatetime(r.request_time)
        if r.receive_time is not None:
            message.return_info.receive_time.FromDatetime(r.receive_time)
    return message
