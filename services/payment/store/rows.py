"""Rows of ``payments`` and ``refunds`` as domain objects, for both data-access paths
(asyncpg records and SQLAlchemy rows' ``_mapping``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.payment.domain.payment import Payment, PaymentStatus, Refund

PAYMENT_COLUMNS = ("payment_id, order_id, status, currency_code, amount_minor, captured_minor, refunded_minor, "
                   "provider, provider_reference, decline_reason, create_time, update_time")
REFUND_COLUMNS = "refund_id, payment_id, amount_minor, reason, provider_reference, create_time"


def payment_of(row: Mapping[Any, Any], refunds: Sequence[Refund] = ()) -> Payment:
    return Payment(
        payment_id=row["payment_id"], order_id=row["order_id"], status=PaymentStatus(row["status"]),
        currency_code=row["currency_code"], amount_minor=row["amount_minor"], captured_minor=row["captured_minor"],
        refunded_minor=row["refunded_minor"], provider=row["provider"], provider_reference=row["provider_reference"],
        decline_reason=row["decline_reason"], create_time=row["create_time"], update_time=row["update_time"],
        refunds=tuple(refunds),
    )


def refund_of(row: Mapping[Any, Any]) -> Refund:
    return Refund(row["refund_id"], row["amount_minor"], row["reason"], row["provider_reference"], row["create_time"])
