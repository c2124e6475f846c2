"""ChargePayment's statements (services/runtime/sql.py): the payment row is the call's
idempotency record, so there is no idempotency_keys row, lock or transaction. One
statement reads what the request_id made before; after the provider, one statement
inserts the payment and its outbox row together, or nothing when a concurrent twin of
the call inserted first."""

from __future__ import annotations

from services.payment.domain.payment import Payment
from services.payment.domain.request_ids import UNKNOWN, Recorded
from services.payment.store import reads
from services.payment.store.rows import PAYMENT_COLUMNS
from services.runtime.events import outbox
from services.runtime.events.outbox import OutboxRow
from services.runtime.sql import Session, Sql

_P_COLUMNS = ", ".join(f"p.{c}" for c in PAYMENT_COLUMNS.split(", "))
# Always one row: the payment this request_id made (NULLs if none) and the method of another
# call that took it as its idempotency key (AuthorizePayment, CapturePayment, ...; NULL if none).
BY_REQUEST = Sql(f"""
SELECT k.method AS key_method, p.request_fingerprint, {_P_COLUMNS}
FROM (SELECT $1::text AS request_id) r
LEFT JOIN {{schema}}.payments p ON p.authorize_request_id = r.request_id
LEFT JOIN {{schema}}.idempotency_keys k ON k.request_id = r.request_id""")

# The outbox row is inserted from the payment CTE's RETURNING: only with the payment.
# ON CONFLICT without a target: a concurrent twin holds the same request_id *and* the same
# provider reference (the provider answered both alike), and a conflict on an index that
# is not the arbiter would be an error instead of nothing.
INSERT = Sql(f"""
WITH payment AS (
    INSERT INTO {{schema}}.payments (payment_id, order_id, authorize_request_id, request_fingerprint, status,
        currency_code, amount_minor, captured_minor, refunded_minor, provider, provider_reference, decline_reason,
        create_time, update_time)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, $12)
    ON CONFLICT DO NOTHING
    RETURNING payment_id),
event AS (
    INSERT INTO {{schema}}.outbox ({outbox.COLUMNS}) SELECT {outbox.values_sql(13)} FROM payment)
SELECT payment_id FROM payment""")


async def by_request(session: Session, request_id: str) -> Recorded | None:
    """What ``request_id`` was used for before; None: nothing."""
    row = await session.fetchrow(BY_REQUEST, request_id)
    assert row is not None  # one row whatever is found
    found = None if row["payment_id"] is None else (await reads.with_refunds(session, [row]))[0]
    if row["key_method"] is not None:
        return Recorded(found, UNKNOWN)
    return None if found is None else Recorded(found, row["request_fingerprint"])


async def insert(session: Session, payment: Payment, request_id: str, fingerprint: str, event: OutboxRow) -> bool:
    """Stores a new payment (refunds none, create and update time its own) with its event;
    False, and nothing written, when ``request_id`` (or the provider reference) has one already."""
    inserted = await session.fetchval(
        INSERT, payment.payment_id, payment.order_id, request_id, fingerprint, payment.status.value,
        payment.currency_code, payment.amount_minor, payment.captured_minor, payment.provider,
        payment.provider_reference, payment.decline_reason, payment.create_time, *event.args())
    if inserted is None:
        return False
    session.add_events(event)
    return True
