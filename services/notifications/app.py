"""Wiring of the notifications worker: its database (one schema per tenant, created
on the tenant's first event), the order-events consumer, the SMTP mailer. It serves
gRPC health only (SERVING while its database answers)."""

from __future__ import annotations

from typing import Any

import grpc

from services.notifications.mailer import SmtpMailer
from services.notifications.migrations import SCRIPTS
from services.notifications.notifier import DURABLE, SUBJECTS, Mailer, Notifier
from services.runtime.bootstrap import open_database
from services.runtime.db import Database
from services.runtime.events.consumer import EventConsumer
from services.runtime.server import App, Hook
from services.runtime.settings import Settings
from services.runtime.tokens import KeySet, TokenVerifier

NAME = "notifications"


def consumer(db: Database, settings: Settings, mailer: Mailer, **options: Any) -> EventConsumer:
    """The order-events consumer. A mail server that is away is retried for about a quarter
    of an hour (back-off up to a minute) before an event goes to the dead-letter subject.
    One event per transaction (an email sent and then rolled back with others would go out
    twice), as many at once as the mailer has SMTP sessions."""
    defaults: dict[str, Any] = {"durable": DURABLE, "max_deliver": 20, "nak_base_seconds": 1.0,
                                "nak_max_seconds": 60.0, "together": False,
                                "parallel": settings.smtp_sessions}
    options = defaults | options
    return EventConsumer(db, settings, subjects=SUBJECTS, handler=Notifier(mailer), script_location=SCRIPTS,
                         **options)


def _no_callers() -> TokenVerifier:
    """The worker serves no RPC of its own (health and reflection need no token)."""

    async def no_keys() -> list[Any]:
        return []

    return TokenVerifier(KeySet(no_keys), "", "")


async def build(settings: Settings, mailer: Mailer | None = None, **consumer_options: Any) -> App:
    db = await open_database(settings, NAME, SCRIPTS)
    smtp = SmtpMailer(settings) if mailer is None else None
    worker = consumer(db, settings, mailer or smtp, **consumer_options)  # type: ignore[arg-type]
    on_stop: list[Hook] = [worker.stop, *([smtp.close] if smtp is not None else []), db.dispose]

    def register(_server: grpc.aio.Server) -> None:
        pass

    return App(name=NAME, services=[], register=register, verifier=_no_callers(),
               probes={"database": db.ping}, facets=db.facets(), on_start=[worker.start], on_stop=on_stop)
