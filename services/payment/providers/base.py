"""What the payment service needs from a payment provider.

Every call takes our idempotency key (the request_id of the call that caused it)
and passes it through to the provider, so a retry after a lost answer never
moves money twice: the provider answers a repeated key with its first outcome.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from services.payment.domain.payment import Money


class Outcome(enum.Enum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"  # the provider refused (card declined, insufficient funds, ...)
    FAILED = "FAILED"  # the provider could not process it


@dataclass(frozen=True)
class Authorization:
    outcome: Outcome
    reference: str  # the provider's id of the payment
    decline_reason: str = ""  # UPPER_SNAKE when not APPROVED


@dataclass(frozen=True)
class Operation:
    reference: str  # the provider's id of the capture, void or refund


class ProviderError(Exception):
    """The provider could not be reached or did not answer: the outcome is unknown.
    Retrying with the same idempotency key is safe."""


class ProviderTimeout(ProviderError):
    pass


class IdempotencyConflict(Exception):
    """The provider saw this idempotency key before, with other parameters (amount, payment)."""


class PaymentProvider(Protocol):
    name: str

    async def charge(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        """Authorize and capture the whole amount in one step (APPROVED: captured). A provider
        without a one-step charge implements it with ``authorize_then_capture``."""
        ...

    async def authorize(self, idempotency_key: str, amount: Money, token: str) -> Authorization: ...

    async def capture(self, idempotency_key: str, reference: str, amount: Money) -> Operation: ...

    async def void(self, idempotency_key: str, reference: str) -> Operation: ...

    async def refund(self, idempotency_key: str, reference: str, amount: Money) -> Operation: ...


async def authorize_then_capture(provider: PaymentProvider, idempotency_key: str, amount: Money,
                                 token: str) -> Authorization:
    """``charge`` for a provider that cannot charge in one step: both steps under the same key,
    so a retry gets the first authorization and the first capture back."""
    authorization = await provider.authorize(idempotency_key, amount, token)
    if authorization.outcome is Outcome.APPROVED:
        await provider.capture(idempotency_key, authorization.reference, amount)
    return authorization


class ProviderFactory(Protocol):
    """The provider account of one tenant (each tenant has its own)."""

    def __call__(self, tenant_id: str) -> PaymentProvider: ...
