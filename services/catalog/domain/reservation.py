"""Stock reservations for checkout: what a valid request is, and which state
changes a reservation allows.

A reservation holds units of one or more products for an order until it is
committed (sold), released (the order gave up) or expired (nobody came back in
time). Only HELD moves; every other state is final.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.catalog.domain.ids import is_product_id
from services.catalog.domain.product import ProductStatus
from services.runtime.errors import FailedPrecondition, NotFound
from services.runtime.validation import Violations

RESERVATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
LINES_MAX, QUANTITY_MAX = 100, 1000
TTL_DEFAULT, TTL_MAX = 900, 3600
# LowStock is published when available stock falls to or below this.
LOW_STOCK_THRESHOLD = 5


class ReservationState(enum.Enum):
    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, order=True)
class Line:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class ReserveRequest:
    reservation_id: str
    lines: tuple[Line, ...]  # sorted by product_id: the order stock rows are locked in
    ttl_seconds: int

    def same_lines(self, other: Sequence[Line]) -> bool:
        return self.lines == tuple(sorted(other))


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    lines: tuple[Line, ...]
    state: ReservationState
    expire_time: datetime

    def is_lapsed(self, now: datetime) -> bool:
        """Held past its expiry: the sweeper has not got to it yet, but it counts as expired."""
        return self.state is ReservationState.HELD and now >= self.expire_time


@dataclass(frozen=True)
class Taken:
    """Units of one product a change took from what is available, and what is left."""

    product_id: str
    sku: str
    quantity: int
    available: int  # after the change


@dataclass(frozen=True)
class OnSale:
    """What a refused reservation found of one of its lines: the product's status
    (None: no such product) and its available units."""

    line: Line
    status: str | None
    available: int


def _reservation_id(v: Violations, value: str, field: str) -> str:
    if not value:
        v.add(field, "is required")
    elif not RESERVATION_ID.fullmatch(value):
        v.add(field, "must be 1-128 of A-Z a-z 0-9 _ . : - (the order id)")
    return value


def checked_reservation_id(value: str, field: str = "reservation_id") -> str:
    v = Violations()
    _reservation_id(v, value, field)
    v.raise_if_any()
    return value


def reserve_request(reservation_id: str, lines: Sequence[tuple[str, int]], ttl_seconds: int) -> ReserveRequest:
    """Every field checked at once: one INVALID_ARGUMENT names each bad one ("lines[2].quantity")."""
    v = Violations()
    _reservation_id(v, reservation_id, "reservation_id")
    if not lines:
        v.add("lines", "at least one line is required")
    elif len(lines) > LINES_MAX:
        v.add("lines", f"at most {LINES_MAX} lines (got {len(lines)})")
    seen: set[str] = set()
    for i, (product_id, quantity) in enumerate(lines if len(lines) <= LINES_MAX else ()):
        if not product_id:
            v.add(f"lines[{i}].product_id", "is required")
        elif not is_product_id(product_id):
            v.add(f"lines[{i}].product_id", "is not a product id (prd_ followed by 26 characters)")
        elif product_id in seen:
            v.add(f"lines[{i}].product_id", "appears on more than one line; put the whole quantity on one")
        seen.add(product_id)
        if not 1 <= quantity <= QUANTITY_MAX:
            v.add(f"lines[{i}].quantity", f"must be between 1 and {QUANTITY_MAX}")
    if ttl_seconds != 0 and not 1 <= ttl_seconds <= TTL_MAX:
        v.add("ttl_seconds", f"must be between 1 and {TTL_MAX} (0 means {TTL_DEFAULT})")
    v.raise_if_any()
    return ReserveRequest(reservation_id, tuple(sorted(Line(p, q) for p, q in lines)), ttl_seconds or TTL_DEFAULT)


# --- refusals ------------------------------------------------------------------------

def reservation_not_found(reservation_id: str) -> NotFound:
    return NotFound("reservation not found", reason="RESERVATION_NOT_FOUND",
                    metadata={"reservation_id": reservation_id})


def out_of_stock(product_id: str, requested: int, available: int) -> FailedPrecondition:
    return FailedPrecondition(f"only {max(available, 0)} unit(s) of {product_id} available, {requested} requested",
                              reason="OUT_OF_STOCK",
                              metadata={"product_id": product_id, "requested": str(requested),
                                        "available": str(max(available, 0))})


def product_unavailable(product_id: str, status: str | None) -> FailedPrecondition:
    why = "does not exist" if status is None else f"is {status.lower()}, not for sale"
    return FailedPrecondition(f"product {product_id} {why}", reason="PRODUCT_UNAVAILABLE",
                              metadata={"product_id": product_id, "status": status or "NOT_FOUND"})


def id_reused(reservation_id: str) -> FailedPrecondition:
    return FailedPrecondition("reservation_id was already used for other lines", reason="REQUEST_ID_REUSED",
                              metadata={"reservation_id": reservation_id})


def not_committable(reservation: Reservation) -> FailedPrecondition:
    """Committing a reservation that is no longer held (released, or expired)."""
    state = ReservationState.EXPIRED if reservation.state is ReservationState.HELD else reservation.state
    return FailedPrecondition(f"reservation is {state.value.lower()}; its units were given back",
                              reason="RESERVATION_EXPIRED",
                              metadata={"reservation_id": reservation.reservation_id, "state": state.value})


def already_committed(reservation_id: str) -> FailedPrecondition:
    return FailedPrecondition("reservation is committed: the units are sold; restock with AdjustStock",
                              reason="RESERVATION_COMMITTED", metadata={"reservation_id": reservation_id})


def newly_low(taken: Sequence[Taken]) -> list[Taken]:
    """The lines whose change took available stock across the low-stock threshold."""
    return [t for t in taken if crossed_low_stock(t.available + t.quantity, t.available)]


def refusal(found: Sequence[OnSale]) -> FailedPrecondition | None:
    """Why a reservation of these lines cannot be held: the first line (product_id order)
    whose product is not for sale, else the first short of stock; None if none is (stock
    came back since the attempt: try again)."""
    for sale in found:
        if sale.status != ProductStatus.ACTIVE.value:
            return product_unavailable(sale.line.product_id, sale.status)
    for sale in found:
        if sale.available < sale.line.quantity:
            return out_of_stock(sale.line.product_id, sale.line.quantity, sale.available)
    return None


def confirmed_sale(order_id: str, lines: Sequence[tuple[str, int]]) -> tuple[str, tuple[Line, ...]]:
    """The reservation id and lines of a confirmed order (units of a product on several
    lines are added up), checked as a reservation is; INVALID_ARGUMENT naming each bad field."""
    units: dict[str, int] = {}
    for product_id, quantity in lines:
        units[product_id] = units.get(product_id, 0) + quantity
    request = reserve_request(order_id, list(units.items()), 0)
    return request.reservation_id, request.lines


def crossed_low_stock(available_before: int, available_after: int, threshold: int = LOW_STOCK_THRESHOLD) -> bool:
    """True once per crossing: this change took available from above the threshold to at or below it."""
    return available_after <= threshold < available_before
