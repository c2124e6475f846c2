"""The payment calls as their requests state them, checked field by field, so one
INVALID_ARGUMENT names every bad field (as a REST caller spells it)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from services.payment.domain.payment import Money
from services.runtime.currencies import is_circulating
from services.runtime.errors import FieldViolation, InvalidArgument

REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TOKEN = re.compile(r"^[\x21-\x7e]{1,256}$")
AMOUNT_MAX = 10**12
REASON_MAX = 500
PROVIDERS = ("sandbox",)
DEFAULT_PROVIDER = "sandbox"


class Violations:
    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.found.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidArgument(self.found)

    def request_id(self, value: str, field: str = "request_id") -> str:
        if not value:
            self.add(field, "is required: an idempotency key of 1-64 characters")
        elif not REQUEST_ID.fullmatch(value):
            self.add(field, "must be 1-64 of A-Z a-z 0-9 _ . : - (a UUID is a good choice)")
        return value

    def order_id(self, value: str, field: str = "order_id") -> str:
        if not value:
            self.add(field, "is required")
        elif not ORDER_ID.fullmatch(value):
            self.add(field, "must be 1-64 of A-Z a-z 0-9 _ . : -")
        return value

    def money(self, value: Money | None, field: str, *, required: bool) -> Money | None:
        if value is None:
            if required:
                self.add(field, "is required")
            return None
        if not is_circulating(value.currency_code):
            self.add(field + ".currency_code", "must be a circulating ISO 4217 code, e.g. USD")
        if value.amount_minor <= 0:
            self.add(field + ".amount_minor", "must be greater than zero")
        elif value.amount_minor > AMOUNT_MAX:
            self.add(field + ".amount_minor", f"must be at most {AMOUNT_MAX}")
        return value


@dataclass(frozen=True)
class Authorize:
    request_id: str
    order_id: str
    amount: Money
    payment_token: str
    provider: str


@dataclass(frozen=True)
class Capture:
    request_id: str
    payment_id: str
    order_id: str
    amount: Money | None


@dataclass(frozen=True)
class Void:
    request_id: str
    payment_id: str
    order_id: str


@dataclass(frozen=True)
class RefundRequest:
    request_id: str
    payment_id: str
    amount: Money | None
    reason: str


def authorize(request_id: str, order_id: str, amount: Money | None, payment_token: str, provider: str) -> Authorize:
    v = Violations()
    v.request_id(request_id)
    v.order_id(order_id)
    checked = v.money(amount, "amount", required=True)
    if not payment_token:
        v.add("payment_token", "is required")
    elif not TOKEN.fullmatch(payment_token):
        v.add("payment_token", "must be 1-256 printable ASCII characters without spaces")
    if provider and provider not in PROVIDERS:
        v.add("provider", f"unknown provider; configured: {', '.join(PROVIDERS)}")
    v.raise_if_any()
    assert checked is not None
    return Authorize(request_id, order_id, checked, payment_token, provider or DEFAULT_PROVIDER)


def capture(request_id: str, payment_id: str, order_id: str, amount: Money | None) -> Capture:
    v = Violations()
    v.request_id(request_id)
    if not payment_id:
        v.add("payment_id", "is required")
    v.order_id(order_id)
    v.money(amount, "amount", required=False)
    v.raise_if_any()
    return Capture(request_id, payment_id, order_id, amount)


def void(request_id: str, payment_id: str, order_id: str) -> Void:
    v = Violations()
    v.request_id(request_id)
    if not payment_id:
        v.add("payment_id", "is required")
    v.order_id(order_id)
    v.raise_if_any()
    return Void(request_id, payment_id, order_id)


def refund(request_id: str, payment_id: str, amount: Money | None, reason: str) -> RefundRequest:
    v = Violations()
    v.request_id(request_id)
    if not payment_id:
        v.add("payment_id", "is required")
    v.money(amount, "amount", required=False)
    if len(reason) > REASON_MAX:
        v.add("reason", f"must be at most {REASON_MAX} characters (got {len(reason)})")
    elif any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in reason):
        v.add("reason", "must not contain control characters other than newline and tab")
    v.raise_if_any()
    return RefundRequest(request_id, payment_id, amount, reason)


def same_currency(amount: Money | None, currency_code: str) -> int | None:
    """The amount in minor units, once it is known to be in the payment's currency (None: unset)."""
    if amount is None:
        return None
    if amount.currency_code != currency_code:
        raise InvalidArgument.field("amount.currency_code", f"must be the payment's currency, {currency_code}")
    return amount.amount_minor
