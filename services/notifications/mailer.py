"""Sending email over SMTP (smtplib, in a worker thread so the event loop never blocks)."""

from __future__ import annotations

import asyncio
import smtplib
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

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            if self._starttls:
                smtp.starttls()
            if self._user:
                smtp.login(self._user, self._password)
            smtp.send_message(message)
