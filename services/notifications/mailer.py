"""Sending email over SMTP (smtplib, in a worker thread so the event loop never blocks).

One SMTP session is kept open and reused for every message (a new connection, greeting,
STARTTLS and login per email cost more than the email). A session the server closed
(idle timeout, restart) is noticed at the next send, which opens a new one and sends
again; any other failure closes it and raises (the event is delivered again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate

from services.notifications.domain.emails import Email
from services.runtime.settings import Settings


def message_for(email: Email, sender: str, event_id: str, tenant_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # One Message-ID per event: a mail client shows a message sent twice only once.
    message["Message-ID"] = f"<{event_id}@commerce-mesh>"
    message["X-Commerce-Tenant"] = tenant_id
    message["X-Commerce-Order"] = email.order_id
    message.set_content(email.body)
    return message


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.sender = settings.smtp_from
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._timeout = settings.smtp_timeout_seconds
        self._starttls = settings.smtp_starttls
        self._user = settings.smtp_user
        self._password = settings.smtp_password.get_secret_value()
        self._smtp: smtplib.SMTP | None = None
        # One thread: the session is used by one send at a time.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp")
        self.sessions_opened = 0

    async def send(self, message: EmailMessage) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._send, message)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _session(self) -> smtplib.SMTP:
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
            self.sessions_opened += 1
        return self._smtp

    def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
            smtp.close()

    def _send(self, message: EmailMessage) -> None:
        reused = self._smtp is not None
        try:
            self._session().send_message(message)
            return
        except smtplib.SMTPServerDisconnected:
            self._close()
            if not reused:
                raise
        except BaseException:
            self._close()
            raise
        try:  # the kept session had been closed by the server: once more on a new one
            self._session().send_message(message)
        except BaseException:
            self._close()
            raise
