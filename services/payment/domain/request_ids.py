"""One request_id, one request (AIP-155) for the calls that create a payment.

AuthorizePayment and ChargePayment record their payment under the request_id
(``payments.authorize_request_id``, unique) with a fingerprint of what the request
asked for: method, order, amount, payment token, provider. A request_id that comes
back with another fingerprint, or that another call (capture, void, refund) already
took, is FAILED_PRECONDITION REQUEST_ID_REUSED. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.payment.domain.payment import Payment
from services.payment.domain.requests import Authorize
from services.runtime.errors import FailedPrecondition

AUTHORIZE = "AuthorizePayment"
CHARGE = "ChargePayment"
UNKNOWN = ""  # the fingerprint of a request not known: older rows, or another call's key


def fingerprint(method: str, cmd: Authorize) -> str:
    """The request without its request_id. The fields are checked (no control characters),
    so joining them with one is unambiguous; the token is only ever kept hashed."""
    fields = (method, cmd.order_id, cmd.amount.currency_code, str(cmd.amount.amount_minor), cmd.payment_token,
              cmd.provider)
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def reused(request_id: str) -> FailedPrecondition:
    return FailedPrecondition("request_id was already used for a different request", reason="REQUEST_ID_REUSED",
                              metadata={"request_id": request_id})


@dataclass(frozen=True)
class Recorded:
    """What a request_id was used for before: the payment it made and that request's
    fingerprint, or (``payment`` None, fingerprint UNKNOWN) a call of another kind."""

    payment: Payment | None
    fingerprint: str

    def answer(self, request_id: str, fingerprint: str, *, unknown_is_same: bool = False) -> Payment:
        """The recorded payment, if it was made by this very request; ``unknown_is_same``
        accepts a payment whose request is not known (written before fingerprints)."""
        same = self.fingerprint == fingerprint or (unknown_is_same and self.fingerprint == UNKNOWN)
        if self.payment is None or not same:
            raise reused(request_id)
        return self.payment
