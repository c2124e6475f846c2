"""Sending email over SMTP (aiosmtplib: asyncio, no threads).

SMTP sessions are kept open and reused (a new connection, greeting, STARTTLS and login per
email cost more than the email): ``smtp_sessions`` of them, each used by one send at a time,
so that many emails go out at once. A session the server closed (idle timeout, restart) is
noticed at the next send, which opens a new one and sends again; any other failure closes
it and raises (the event is delivered again later). No threads: an SMTP round trip in a
worker thread waits for the GIL behind the busy event loop (up to 5 ms a time).
"""

from __future__ import annotations

import asyncio
import contextlib
from email import charset
from email.header import Header
from email.message import EmailMessage, Message
from email.utils import formatdate

import aiosmtplib
from opentelemetry.trace import SpanKind

from services.notifications.domain.emails import Email
from services.runtime import telemetry
from services.runtime.settings import Settings

# Plain text in UTF-8, quoted-printable: readable as it is for ASCII text, safe for any.
_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.body_encoding = charset.QP


def message_for(email: Email, sender: str, event_id: str, tenant_id: str) -> Message:
    """The email as a MIME message. Built with the email package's compat32 API (a quarter of the
    cost of EmailMessage's default policy); addresses that are not ASCII take EmailMessage, which
    smtplib sends with SMTPUTF8."""
    if not (email.to.isascii() and sender.isascii()):
        return _international(email, sender, event_id, tenant_id)
    message = Message()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject if email.subject.isascii() else Header(email.subject, "utf-8").encode()
    _headers(message, event_id, tenant_id, email.order_id)
    message["MIME-Version"] = "1.0"
    message.set_payload(email.body, charset=_UTF8_QP)
    return message


def _international(email: Email, sender: str, event_id: str, tenant_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    _headers(message, event_id, tenant_id, email.order_id)
    message.set_content(email.body)
    return message


def _headers(message: Message, event_id: str, tenant_id: str, order_id: str) -> None:
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # One Message-ID per event: a mail client shows a message sent twice only once.
    message["Message-ID"] = f"<{event_id}@commerce-mesh>"
    message["X-Commerce-Tenant"] = tenant_id
    message["X-Commerce-Order"] = order_id


class _Session:
    """One SMTP connection, opened on first use; one send at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self.opened = 0

    async def _open(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            s = self._settings
            smtp = aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_seconds,
                                   start_tls=s.smtp_starttls, username=s.smtp_user or None,
                                   password=s.smtp_password.get_secret_value() or None)
            await smtp.connect()
            self._smtp = smtp
            self.opened += 1
        return self._smtp

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                await smtp.quit()
            smtp.close()

    async def send(self, message: Message) -> None:
        reused = self._smtp is not None
        try:
            await (await self._open()).send_message(message)
            return
        except aiosmtplib.SMTPServerDisconnected:
            await self.close()
            if not reused:
                raise
        except BaseException:
            await self.close()
            raise
        try:  # the kept session had been closed by the server: once more on a new one
            await (await self._open()).send_message(message)
        except BaseException:
            await self.close()
            raise


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.sender = settings.smtp_from
        self.sessions = settings.smtp_sessions
        self._host, self._port = settings.smtp_host, settings.smtp_port
        self._all = [_Session(settings) for _ in range(self.sessions)]
        self._idle: asyncio.Queue[_Session] = asyncio.Queue()
        for session in self._all:
            self._idle.put_nowait(session)

    @property
    def sessions_opened(self) -> int:
        return sum(session.opened for session in self._all)

    async def send(self, message: Message) -> None:
        with telemetry.span("smtp send", {"server.address": self._host, "server.port": self._port,
                                          telemetry.ORDER: message.get("X-Commerce-Order", "")},
                            kind=SpanKind.CLIENT):
            session = await self._idle.get()
            try:
                await session.send(message)
            finally:
                self._idle.put_nowait(session)

    async def close(self) -> None:
        for session in self._all:
            await session.close()
