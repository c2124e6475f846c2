"""Sending email over SMTP (smtplib, in worker threads so the event loop never blocks).

SMTP sessions are kept open and reused (a new connection, greeting, STARTTLS and login per
email cost more than the email): ``smtp_sessions`` of them, each used by one send at a time,
so that many emails go out at once. A session the server closed (idle timeout, restart) is
noticed at the next send, which opens a new one and sends again; any other failure closes
it and raises (the event is delivered again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import smtplib
from concurrent.futures import ThreadPoolExecutor
from email import charset
from email.header import Header
from email.message import EmailMessage, Message
from email.utils import formatdate

from services.notifications.domain.emails import Email
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
    """One SMTP connection, opened on first use; one thread at a time."""

    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._timeout = settings.smtp_timeout_seconds
        self._starttls = settings.smtp_starttls
        self._user = settings.smtp_user
        self._password = settings.smtp_password.get_secret_value()
        self._smtp: smtplib.SMTP | None = None
        self.opened = 0

    def _open(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            try:
                if self._starttls:
                    smtp.starttls()
                if self._user:
                    smtp.login(self._user, self._password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
            self.opened += 1
        return self._smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
            smtp.close()

    def send(self, message: Message) -> None:
        reused = self._smtp is not None
        try:
            self._open().send_message(message)
            return
        except smtplib.SMTPServerDisconnected:
            self.close()
            if not reused:
                raise
        except BaseException:
            self.close()
            raise
        try:  # the kept session had been closed by the server: once more on a new one
            self._open().send_message(message)
        except BaseException:
            self.close()
            raise


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.sender = settings.smtp_from
        self.sessions = settings.smtp_sessions
        self._all = [_Session(settings) for _ in range(self.sessions)]
        self._idle: queue.SimpleQueue[_Session] = queue.SimpleQueue()
        for session in self._all:
            self._idle.put(session)
        self._threads = ThreadPoolExecutor(max_workers=self.sessions, thread_name_prefix="smtp")

    @property
    def sessions_opened(self) -> int:
        return sum(session.opened for session in self._all)

    async def send(self, message: Message) -> None:
        await asyncio.get_running_loop().run_in_executor(self._threads, self._send, message)

    def _send(self, message: Message) -> None:
        session = self._idle.get()
        try:
            session.send(message)
        finally:
            self._idle.put(session)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._threads, self._close_all)
        self._threads.shutdown(wait=False)

    def _close_all(self) -> None:
        for session in self._all:
            session.close()
