"""Stock of one product: units on hand, and those held by reservations. What can
still be sold is on_hand - reserved; on_hand never drops below what is reserved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.runtime.errors import FailedPrecondition, InvalidArgument

ON_HAND_MAX = 10**9
DELTA_MAX = 10**9


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    on_hand: int
    reserved: int
    update_time: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def with_on_hand(self, on_hand: int) -> StockLevel:
        if on_hand < self.reserved:
            raise FailedPrecondition(
                f"on_hand {on_hand} would be below the {self.reserved} units reserved",
                reason="INSUFFICIENT_STOCK",
                metadata={"product_id": self.product_id, "reserved": str(self.reserved),
                          "on_hand": str(self.on_hand)},
            )
        if on_hand > ON_HAND_MAX:
            raise FailedPrecondition(f"on_hand would exceed {ON_HAND_MAX}", reason="STOCK_LIMIT_EXCEEDED",
                                     metadata={"product_id": self.product_id, "on_hand": str(self.on_hand)})
        return replace(self, on_hand=on_hand)

    def adjusted(self, delta: int) -> StockLevel:
        return self.with_on_hand(self.on_hand + delta)


def checked_on_hand(on_hand: int) -> int:
    if not 0 <= on_hand <= ON_HAND_MAX:
        raise InvalidArgument.field("on_hand", f"must be between 0 and {ON_HAND_MAX}")
    return on_hand


def checked_delta(delta: int) -> int:
    if delta == 0 or abs(delta) > DELTA_MAX:
        raise InvalidArgument.field("delta", f"must be non-zero, between -{DELTA_MAX} and {DELTA_MAX}")
    return delta
