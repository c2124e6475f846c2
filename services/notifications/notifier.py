"""The order-events handler: one email per confirmed, cancelled or refunded order.

Runs inside the consumer's transaction (with the inbox entry): the email is logged,
then sent; a failed send rolls both back and the event is delivered again later.
"""

from __future__ import annotations

from email.message import Message as MimeMessage
from typing import Protocol

import structlog
from commerce.order.v1 import order_events_pb2
from google.protobuf.message import Message
from prometheus_client import Counter

from services.notifications import sent_log
from services.notifications.domain.emails import KINDS, email_for
from services.notifications.mailer import message_for
from services.runtime.events.naming import subject_pattern
from services.runtime.sql import Session

log = structlog.get_logger("commerce.notifications")
DURABLE = "notifications-orders"
EVENTS = (order_events_pb2.OrderConfirmed, order_events_pb2.OrderCancelled, order_events_pb2.OrderRefunded)
SUBJECTS = [subject_pattern(event.DESCRIPTOR) for event in EVENTS]
# A failed send is retried (the event comes again): "failed" counts attempts, "sent" emails.
EMAILS = Counter("commerce_emails_total", "Order emails by kind and outcome of the SMTP send (sent, failed)",
                 ["kind", "outcome"])


class Mailer(Protocol):
    sender: str

    async def send(self, message: MimeMessage) -> None: ...


class Notifier:
    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer
        for kind in KINDS:  # at 0 from the start, so a rule on failures sees the series
            EMAILS.labels(kind, "sent")
            EMAILS.labels(kind, "failed")

    async def __call__(self, session: Session, event: Message, tenant_id: str) -> None:
        email = email_for(event)
        if email is None:
            return
        event_id = event.metadata.event_id  # type: ignore[attr-defined]
        if not await sent_log.record(session, event_id, email):
            log.info("email already sent; skipped", order_id=email.order_id, kind=email.kind)
            return
        try:
            await self._mailer.send(message_for(email, self._mailer.sender, event_id, tenant_id))
        except Exception:
            EMAILS.labels(email.kind, "failed").inc()
            raise
        EMAILS.labels(email.kind, "sent").inc()
        log.info("email sent", order_id=email.order_id, kind=email.kind, tenant=tenant_id)
