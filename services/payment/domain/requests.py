"""The payment calls as their requests state them, checked field by field, so one
INVALID_ARGUMENT names every bad field (as a REST caller spells it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.payment.domain.payment import Money
from services.runtime.currencies import is_circulating
from services.runtime.errors import InvalidArgument
from services.runtime.validation import Violations

ORDER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TOKEN = re.compile(r"^[\x21-\x7e]{1,256}$")
AMOUNT_MAX = 10**12
REASON_MAX = 500
PROVIDERS = ("sandbox",)
DEFAULT_PROVIDER = "sandbox"


ORDER_ID_RULE = "must be 1-64 of A-Z a-z 0-9 _ . : -"


def check_order_id(v: Violations, value: str, field: str = "order_id") -> str:
    if not value:
        v.add(field, "is required")
    elif not ORDER_ID.fullmatch(value):
        v.add(field, ORDER_ID_RULE)
    return value


def check_money(v: Violations, value: Money | None, field: str, *, required: bool) -> Money | None:
    if value is None:
        if required:
            v.add(field, "is required")
        return None
    if not is_circulating(value.currency_code):
        v.add(field + ".currency_code", "must be a circulating ISO 4217 code, e.g. USD")
    if value.amount_minor <= 0:
        v.add(field + ".amount_minor", "must be greater than zero")
    elif value.amount_minor > AMOUNT_MAX:
        v.add(field + ".amount_minor", f"must be at most {AMOUNT_MAX}")
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
    v.request_id(request_id, required=True)
    check_order_id(v, order_id)
    checked = check_money(v, amount, "amount", required=True)
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
    v.request_id(request_id, required=True)
    if not payment_id:
        v.add("payment_id", "is required")
    check_order_id(v, order_id)
    check_money(v, amount, "amount", required=False)
    v.raise_if_any()
    return Capture(request_id, payment_id, order_id, amount)


def void(request_id: str, payment_id: str, order_id: str) -> Void:
    v = Violations()
    v.request_id(request_id, required=True)
    if not payment_id:
        v.add("payment_id", "is required")
    check_order_id(v, order_id)
    v.raise_if_any()
    return Void(request_id, payment_id, order_id)


def refund(request_id: str, payment_id: str, amount: Money | None, reason: str) -> RefundRequest:
    v = Violations()
    v.request_id(request_id, required=True)
    if not payment_id:
        v.add("payment_id", "is required")
    check_money(v, amount, "amount", required=False)
    v.text("reason", reason, max_len=REASON_MAX, required=False, allowed_controls="\n\t")
    v.raise_if_any()
    return RefundRequest(request_id, payment_id, amount, reason)


def same_currency(amount: Money | None, currency_code: str) -> int | None:
    """The amount in minor units, once it is known to be in the payment's currency (None: unset)."""
    if amount is None:
        return None
    if amount.currency_code != currency_code:
        raise InvalidArgument.field("amount.currency_code", f"must be the payment's currency, {currency_code}")
    return amount.amount_minor
