"""Users of a tenant: staff (owner, seller) created by an admin or the tenant's
owner, and customers who register themselves. Emails are lower-cased."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.runtime.validation import Violations
from services.tenant.domain import validation
from services.tenant.domain.tenant import check_tenant_id

DISPLAY_NAME_MAX = 200


class Role(enum.Enum):
    OWNER = "owner"
    SELLER = "seller"
    CUSTOMER = "customer"


STAFF = frozenset({Role.OWNER, Role.SELLER})


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    display_name: str
    role: Role


@dataclass(frozen=True)
class User:
    user_id: str
    tenant_id: str
    email: str
    display_name: str
    role: Role | None  # None for a platform admin
    create_time: datetime


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


def new_user(email: str, password: str, display_name: str, role: Role | None) -> NewUser:
    """A staff user (role owner or seller) or, with Role.CUSTOMER, a self-registering customer."""
    v = Violations()
    clean_email = validation.email(v, "email", email)
    validation.new_password(v, "password", password)
    v.text("display_name", display_name, max_len=DISPLAY_NAME_MAX, required=False, trimmed=True)
    if role is None:
        v.add("role", "must be USER_ROLE_OWNER or USER_ROLE_SELLER")
    v.raise_if_any()
    assert role is not None
    return NewUser(clean_email, password, display_name, role)


def new_staff(email: str, password: str, display_name: str, role: Role | None) -> NewUser:
    return new_user(email, password, display_name, role if role in STAFF else None)


def new_customer(email: str, password: str, display_name: str) -> NewUser:
    return new_user(email, password, display_name, Role.CUSTOMER)


def credentials(email: str, password: str) -> Credentials:
    v = Violations()
    clean_email = v.text("email", email, max_len=validation.EMAIL_MAX, trimmed=True)
    validation.given_password(v, "password", password)
    v.raise_if_any()
    return Credentials(clean_email.lower(), password)


def user_id_of_request(tenant_id: str, user_id: str) -> tuple[str, str]:
    """The tenant and user a request names (user ids are UUIDs)."""
    v = Violations()
    check_tenant_id(v, "tenant_id", tenant_id)
    clean = ""
    if not user_id:
        v.add("user_id", "is required")
    else:
        try:
            clean = str(uuid.UUID(user_id))
        except ValueError:
            v.add("user_id", "must be a user id (a UUID)")
    v.raise_if_any()
    return tenant_id, clean
