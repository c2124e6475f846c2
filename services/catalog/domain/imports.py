"""ImportProducts: which entries of a batch can be written, and why the others cannot.

Each entry is checked on its own (the product rules of product.py, its on_hand, its
sku not seen earlier in the batch); a refused entry keeps its error and the rest go on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.catalog.domain.product import ProductFields, ProductInput, new_product
from services.catalog.domain.stock import ON_HAND_MAX
from services.runtime.errors import DomainError, FailedPrecondition, InvalidArgument

ENTRIES_MAX = 1000


class Outcome(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Entry:
    """An entry as sent: ``product`` None when the entry had none; ``on_hand`` None: keep the stock."""

    product: ProductInput | None
    on_hand: int | None


@dataclass(frozen=True)
class Accepted:
    index: int
    fields: ProductFields
    status_given: bool  # False: an existing product keeps its status
    on_hand: int | None


@dataclass(frozen=True)
class Refused:
    index: int
    sku: str
    error: DomainError


def checked_batch(entries: list[Entry]) -> tuple[list[Accepted], list[Refused]]:
    if not entries:
        raise InvalidArgument.field("entries", f"send 1-{ENTRIES_MAX} entries")
    if len(entries) > ENTRIES_MAX:
        raise InvalidArgument.field("entries", f"at most {ENTRIES_MAX} entries per call (got {len(entries)})")
    accepted: list[Accepted] = []
    refused: list[Refused] = []
    first_of: dict[str, int] = {}
    for index, entry in enumerate(entries):
        sku = entry.product.sku if entry.product is not None else ""
        try:
            fields, given = _checked(entry)
        except DomainError as error:
            refused.append(Refused(index, sku, error))
            continue
        if fields.sku in first_of:
            refused.append(Refused(index, sku, InvalidArgument.field(
                "product.sku", f"is also the sku of entry {first_of[fields.sku]} of this request")))
            continue
        first_of[fields.sku] = index
        accepted.append(Accepted(index, fields, given, entry.on_hand))
    return accepted, refused


def _checked(entry: Entry) -> tuple[ProductFields, bool]:
    if entry.product is None:
        raise InvalidArgument.field("product", "is required")
    fields = new_product(entry.product)
    if entry.on_hand is not None and not 0 <= entry.on_hand <= ON_HAND_MAX:
        raise InvalidArgument.field("on_hand", f"must be between 0 and {ON_HAND_MAX}")
    return fields, entry.product.status != "UNSPECIFIED"


def below_reserved(on_hand: int, reserved: int) -> FailedPrecondition:
    return FailedPrecondition(f"on_hand {on_hand} is below the {reserved} units reserved",
                              reason="INSUFFICIENT_STOCK", metadata={"reserved": str(reserved)})
