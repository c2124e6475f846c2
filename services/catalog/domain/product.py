"""The product: what a valid product is, and how a field-masked update changes one.

Field names in violations are the request's field paths ("product.price.amount_minor").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from services.runtime.currencies import is_circulating
from services.runtime.errors import InvalidArgument
from services.runtime.validation import Violations, control_characters

SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TITLE_MAX, DESCRIPTION_MAX, CATEGORY_MAX = 200, 5000, 64
ATTRIBUTES_MAX, ATTRIBUTE_KEY_MAX, ATTRIBUTE_VALUE_MAX = 50, 64, 500
PRICE_MAX = 10**12
FIELD = "product."


class ProductStatus(enum.Enum):
    DRAFT = "DRAFT"  # sellers only
    ACTIVE = "ACTIVE"  # for sale
    ARCHIVED = "ARCHIVED"  # no longer sold; still readable (order history)


@dataclass(frozen=True)
class Money:
    currency_code: str
    amount_minor: int


@dataclass(frozen=True)
class ProductInput:
    """A product as a request states it, unchecked. ``status`` is the enum name
    without its prefix ("ACTIVE"), "UNSPECIFIED", or whatever unknown value was sent."""

    sku: str = ""
    title: str = ""
    description: str = ""
    category: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    price: Money | None = None
    status: str = "UNSPECIFIED"


@dataclass(frozen=True)
class ProductFields:
    """The fields a seller sets, all valid."""

    sku: str
    title: str
    description: str
    category: str
    attributes: Mapping[str, str]
    price: Money
    status: ProductStatus


@dataclass(frozen=True)
class Product:
    product_id: str
    fields: ProductFields
    create_time: datetime
    update_time: datetime

    @property
    def status(self) -> ProductStatus:
        return self.fields.status


UPDATABLE = ("sku", "title", "description", "category", "attributes", "price", "status")


def _sku(v: Violations, value: str) -> str:
    if not value:
        v.add(FIELD + "sku", "is required")
    elif not SKU.fullmatch(value):
        v.add(FIELD + "sku", "must be 1-64 of A-Z a-z 0-9 . _ -")
    return value


def _attributes(v: Violations, value: Mapping[str, str]) -> Mapping[str, str]:
    name = FIELD + "attributes"
    if len(value) > ATTRIBUTES_MAX:
        v.add(name, f"at most {ATTRIBUTES_MAX} keys (got {len(value)})")
        return value
    for key, item in value.items():
        if not key.strip() or len(key) > ATTRIBUTE_KEY_MAX or control_characters(key):
            v.add(name, f"key {key[:ATTRIBUTE_KEY_MAX]!r}: keys are 1-{ATTRIBUTE_KEY_MAX} characters, "
                        "not blank, without control characters")
        elif len(item) > ATTRIBUTE_VALUE_MAX or control_characters(item):
            v.add(name, f"value of {key!r}: at most {ATTRIBUTE_VALUE_MAX} characters, without control characters")
    return MappingProxyType(dict(value))


def _price(v: Violations, value: Money | None) -> Money:
    if value is None:
        v.add(FIELD + "price", "is required")
        return Money("", 0)
    if not is_circulating(value.currency_code):
        v.add(FIELD + "price.currency_code", "must be a circulating ISO 4217 code, e.g. USD")
    if value.amount_minor < 0:
        v.add(FIELD + "price.amount_minor", "must not be negative")
    elif value.amount_minor > PRICE_MAX:
        v.add(FIELD + "price.amount_minor", f"must be at most {PRICE_MAX}")
    return value


def _status(v: Violations, value: str) -> ProductStatus:
    try:
        return ProductStatus[value]
    except KeyError:
        v.add(FIELD + "status", "must be PRODUCT_STATUS_DRAFT, PRODUCT_STATUS_ACTIVE or PRODUCT_STATUS_ARCHIVED")
        return ProductStatus.DRAFT


def _merged(v: Violations, given: ProductInput, paths: frozenset[str], base: ProductFields) -> ProductFields:
    """``base`` with the fields named in ``paths`` taken from ``given``, each checked."""
    return ProductFields(
        sku=_sku(v, given.sku) if "sku" in paths else base.sku,
        title=v.text(FIELD + "title", given.title, max_len=TITLE_MAX) if "title" in paths else base.title,
        description=v.text(FIELD + "description", given.description, max_len=DESCRIPTION_MAX, required=False,
                           allowed_controls="\n\t") if "description" in paths else base.description,
        category=v.text(FIELD + "category", given.category, max_len=CATEGORY_MAX)
        if "category" in paths else base.category,
        attributes=_attributes(v, given.attributes) if "attributes" in paths else base.attributes,
        price=_price(v, given.price) if "price" in paths else base.price,
        status=_status(v, given.status) if "status" in paths else base.status,
    )


_NEW = ProductFields("", "", "", "", MappingProxyType({}), Money("", 0), ProductStatus.ACTIVE)


def new_product(given: ProductInput) -> ProductFields:
    """A product to create; its status defaults to ACTIVE."""
    paths = frozenset(UPDATABLE) if given.status != "UNSPECIFIED" else frozenset(UPDATABLE) - {"status"}
    v = Violations()
    fields = _merged(v, given, paths, _NEW)
    v.raise_if_any()
    return fields


def update_paths(paths: Sequence[str]) -> frozenset[str]:
    """The fields an update_mask names; only those in UPDATABLE."""
    if not paths:
        raise InvalidArgument.field("update_mask", f"is required: name the fields to change ({', '.join(UPDATABLE)})")
    unknown = sorted(set(paths) - set(UPDATABLE))
    if unknown:
        raise InvalidArgument.field("update_mask", f"unknown or read-only path(s) {', '.join(map(repr, unknown))}; "
                                                   f"allowed: {', '.join(UPDATABLE)}")
    return frozenset(paths)


def updated(current: ProductFields, given: ProductInput, paths: frozenset[str]) -> ProductFields:
    """``current`` with the masked fields taken from ``given`` (each validated)."""
    v = Violations()
    fields = _merged(v, given, paths, current)
    v.raise_if_any()
    return fields


def archived(current: ProductFields) -> ProductFields:
    return replace(current, status=ProductStatus.ARCHIVED)


def requested_status(name: str, field: str) -> ProductStatus | None:
    """A status filter as a request states it (None: unspecified)."""
    if name == "UNSPECIFIED":
        return None
    try:
        return ProductStatus[name]
    except KeyError:
        raise InvalidArgument.field(field, "must be one of the ProductStatus values") from None
