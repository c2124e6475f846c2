"""Checks of request fields; one INVALID_ARGUMENT names every bad field as a REST
caller spells it ("shipping_address.city", "lines[0].quantity", ...)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.order.domain.order import Address, OrderLine, ReturnLine
from services.runtime.validation import Violations, checked_request_id

COUNTRY = re.compile(r"^[A-Z]{2}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def address(v: Violations, given: Address | None, field: str = "shipping_address") -> None:
    if given is None:
        v.add(field, "is required")
        return
    v.text(f"{field}.recipient", given.recipient, max_len=200)
    v.text(f"{field}.line1", given.line1, max_len=200)
    v.text(f"{field}.line2", given.line2, max_len=200, required=False)
    v.text(f"{field}.city", given.city, max_len=100)
    v.text(f"{field}.region", given.region, max_len=100, required=False)
    v.text(f"{field}.postal_code", given.postal_code, max_len=20, required=False)
    if not COUNTRY.fullmatch(given.country_code):
        v.add(f"{field}.country_code", "must be an ISO 3166-1 alpha-2 code, two upper-case letters, e.g. US")


@dataclass(frozen=True)
class Checkout:
    request_id: str
    address: Address
    payment_token: str
    email: str


def checkout(request_id_: str, address_: Address | None, payment_token: str, email: str) -> Checkout:
    v = Violations()
    v.request_id(request_id_, required=True)
    address(v, address_)
    if not payment_token:
        v.add("payment_token", "is required")
    elif len(payment_token) > 256 or not payment_token.isprintable():
        v.add("payment_token", "must be 1-256 printable characters")
    if not email:
        v.add("email", "is required")
    elif len(email) > 254 or not EMAIL.fullmatch(email):
        v.add("email", "must be an email address of at most 254 characters")
    v.raise_if_any()
    assert address_ is not None
    return Checkout(request_id_, address_, payment_token, email)


def optional_request_id(value: str) -> None:
    checked_request_id(value, required=False)


def cancel_reason(reason: str, request_id_: str) -> str:
    v = Violations()
    v.text("reason", reason, max_len=500, required=False)
    v.request_id(request_id_, required=False)
    v.raise_if_any()
    return reason


def shipment(carrier: str, tracking_number: str, request_id_: str) -> None:
    v = Violations()
    v.text("carrier", carrier, max_len=64)
    v.text("tracking_number", tracking_number, max_len=64)
    v.request_id(request_id_, required=False)
    v.raise_if_any()


def return_request(reason: str, lines: Sequence[ReturnLine], ordered: Sequence[OrderLine],
                   request_id_: str) -> tuple[ReturnLine, ...]:
    """The lines being returned (every line in full when none are named)."""
    v = Violations()
    v.text("reason", reason, max_len=500)
    v.request_id(request_id_, required=False)
    quantities = {line.product_id: line.quantity for line in ordered}
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if not line.product_id:
            v.add(f"lines[{i}].product_id", "is required")
        elif line.product_id not in quantities:
            v.add(f"lines[{i}].product_id", "is not a product of this order")
        elif line.product_id in seen:
            v.add(f"lines[{i}].product_id", "names a product already returned by an earlier line")
        elif not 1 <= line.quantity <= quantities[line.product_id]:
            v.add(f"lines[{i}].quantity", f"must be 1-{quantities[line.product_id]} (the quantity ordered)")
        seen.add(line.product_id)
    v.raise_if_any()
    if not lines:
        return tuple(ReturnLine(line.product_id, line.quantity) for line in ordered)
    return tuple(lines)
