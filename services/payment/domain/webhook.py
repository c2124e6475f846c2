"""Provider webhooks: the signature check and the sandbox's event format (pure).

The sandbox signs the raw body with HMAC-SHA256 under the shared webhook secret
and sends the hex digest in the ``x-sandbox-signature`` header (``sha256=`` prefix
optional). The body is JSON::

    {"event_id": "evt_1", "type": "payment.captured" | "payment.refunded" | "payment.voided",
     "provider_reference": "<the payment's provider_reference>",
     "amount_minor": 500,                  # captured / refunded amount (capture: optional)
     "refund_reference": "<provider refund id>"}   # payment.refunded only
Other types are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from services.runtime.errors import InvalidArgument, Unauthenticated

SIGNATURE_HEADER = "x-sandbox-signature"
BODY_MAX = 1024 * 1024
EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
REFERENCE_MAX = 128
KNOWN_TYPES = ("payment.captured", "payment.refunded", "payment.voided")


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str
    type: str
    provider_reference: str
    amount_minor: int | None
    refund_reference: str


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raises Unauthenticated unless ``header`` is the body's signature under ``secret``."""
    if not secret:
        raise Unauthenticated("webhooks are not accepted: no webhook secret is configured",
                              reason="WEBHOOK_SECRET_NOT_CONFIGURED")
    if not header:
        raise Unauthenticated(f"the {SIGNATURE_HEADER} header is required", reason="WEBHOOK_SIGNATURE_REQUIRED")
    given = header.strip().removeprefix("sha256=")
    if not hmac.compare_digest(given.encode(), sign(secret, body).encode()):
        raise Unauthenticated("the webhook signature does not match its body", reason="BAD_WEBHOOK_SIGNATURE")


def _bad(description: str) -> InvalidArgument:
    return InvalidArgument.field("body", description)


def parse_event(body: bytes) -> ProviderEvent:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("must be a JSON object") from exc
    if not isinstance(data, dict):
        raise _bad("must be a JSON object")
    event_id, kind = data.get("event_id"), data.get("type")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise _bad("event_id must be 1-128 of A-Z a-z 0-9 _ . : -")
    if not isinstance(kind, str) or not 0 < len(kind) <= 64:
        raise _bad("type must be a string of 1-64 characters")
    reference = data.get("provider_reference", "")
    refund_reference = data.get("refund_reference", "")
    amount = data.get("amount_minor")
    if not isinstance(reference, str) or len(reference) > REFERENCE_MAX:
        raise _bad(f"provider_reference must be a string of at most {REFERENCE_MAX} characters")
    if not isinstance(refund_reference, str) or len(refund_reference) > REFERENCE_MAX:
        raise _bad(f"refund_reference must be a string of at most {REFERENCE_MAX} characters")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        raise _bad("amount_minor must be a positive integer")
    if kind in KNOWN_TYPES and not reference:
        raise _bad(f"provider_reference is required for {kind}")
    if kind == "payment.refunded" and (amount is None or not refund_reference):
        raise _bad("payment.refunded needs amount_minor and refund_reference")
    return ProviderEvent(event_id, kind, reference, amount, refund_reference)
