"""Messages <-> domain objects, and nothing else."""

from __future__ import annotations

from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import inventory_pb2

from services.catalog.domain.imports import Entry, Outcome
from services.catalog.domain.product import Money, Product, ProductInput
from services.catalog.domain.reservation import Line, Reservation, ReservationState
from services.catalog.domain.stock import StockLevel
from services.catalog.searches import Listing, ListRequest
from services.catalog.store.search_settings import Settings
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


def list_request(message: pb.ListProductsRequest) -> ListRequest:
    return ListRequest(
        query=message.query, filter=message.filter, order_by=message.order_by, page_size=message.page_size,
        page_token=message.page_token, facets=tuple(message.facets), price_buckets=tuple(message.price_buckets),
        category=message.category, min_price_minor=message.min_price_minor, max_price_minor=message.max_price_minor,
        status=status_name(message.status))


def list_response(listing: Listing) -> pb.ListProductsResponse:
    reply = pb.ListProductsResponse(products=[product_pb(p) for p in listing.products],
                                    next_page_token=listing.next_page_token)
    if listing.facets is not None:
        reply.total_size = min(listing.facets.total, 2**31 - 1)
        reply.counts_estimated = listing.facets.estimated
        reply.facets.extend(pb.Facet(field=f.field, values=[
            pb.FacetValue(value=v.value, count=v.count, filter=v.filter, min_price_minor=v.min_price_minor,
                          max_price_minor=v.max_price_minor) for v in f.values]) for f in listing.facets.facets)
    return reply


def catalog_entry(message: pb.CatalogEntry) -> Entry:
    return Entry(product_input(message.product) if message.HasField("product") else None,
                 message.on_hand if message.HasField("on_hand") else None)


def catalog_entry_pb(product: Product, on_hand: int) -> pb.CatalogEntry:
    return pb.CatalogEntry(product=product_pb(product), on_hand=on_hand)


_OUTCOMES = EnumNames(pb.ImportOutcome, "IMPORT_OUTCOME_")


def import_outcome_pb(outcome: Outcome) -> pb.ImportOutcome:
    return _OUTCOMES.number(outcome.value)  # type: ignore[no-any-return]


def search_settings_pb(settings: Settings, languages: list[str]) -> pb.SearchSettings:
    message = pb.SearchSettings(name="searchSettings", language=settings.language, available_languages=languages,
                                reindexing=settings.reindexing)
    message.update_time.FromDatetime(settings.update_time)
    return message
