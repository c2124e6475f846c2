"""Who is calling, and until when: established once per request by the auth interceptor."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from services.runtime.errors import Unauthenticated

ADMIN, OWNER, SELLER, CUSTOMER, GUEST, SERVICE = "admin", "owner", "seller", "customer", "guest", "service"
STAFF_ROLES = frozenset({ADMIN, OWNER, SELLER})
PLATFORM_TENANT = "platform"


@dataclass(frozen=True)
class Caller:
    subject: str
    tenant_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    token: str = ""

    def has_any(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_staff(self) -> bool:
        return self.has_any(STAFF_ROLES)


ANONYMOUS = Caller(subject="", tenant_id="")
_caller: ContextVar[Caller] = ContextVar("caller", default=ANONYMOUS)


def current_caller() -> Caller:
    return _caller.get()


def require_tenant() -> tuple[Caller, str]:
    """The caller and the tenant every query of this request runs in."""
    caller = _caller.get()
    if not caller.tenant_id or caller.tenant_id == PLATFORM_TENANT:
        raise Unauthenticated("this call needs a tenant: a tenant token, or x-tenant-id from an admin",
                              reason="TENANT_REQUIRED")
    return caller, caller.tenant_id


def set_caller(caller: Caller) -> object:
    return _caller.set(caller)


def reset_caller(token: object) -> None:
    _caller.reset(token)  # type: ignore[arg-type]


# When the current call's deadline passes (time.monotonic()), if the caller set one.
_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


def set_deadline(seconds_remaining: float | None) -> object:
    return _deadline.set(None if seconds_remaining is None else time.monotonic() + seconds_remaining)


def reset_deadline(token: object) -> None:
    _deadline.reset(token)  # type: ignore[arg-type]


def seconds_left(at_most: float) -> float:
    """``at_most``, or less when the current call's deadline comes sooner (never below 0)."""
    deadline = _deadline.get()
    if deadline is None:
        return at_most
    return max(0.0, min(at_most, deadline - time.monotonic()))
