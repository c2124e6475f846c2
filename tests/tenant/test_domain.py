"""Pure domain rules of the tenant service (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.runtime.context import Caller
from services.runtime.errors import InvalidArgument, NotFound
from services.tenant.domain import paging
from services.tenant.domain.access import check_can_manage_users, check_can_read_tenant
from services.tenant.domain.tenant import Tenant, TenantState, new_tenant
from services.tenant.domain.user import Role, new_customer, new_staff

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _tenant(state: TenantState) -> Tenant:
    return Tenant("shop", "Shop", "EUR", state, False, NOW, NOW)


def _fields(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in error.value.violations]


def test_provisioning_finishes_as_active_unless_suspended_meanwhile() -> None:
    assert _tenant(TenantState.PROVISIONING).provisioning_done().state is TenantState.ACTIVE
    suspended = _tenant(TenantState.PROVISIONING).suspended().provisioning_done()
    assert (suspended.state, suspended.provisioned) == (TenantState.SUSPENDED, True)


def test_a_valid_tenant_is_accepted_as_given() -> None:
    assert new_tenant("my-shop-2", "My Shop", "JPY").tenant_id == "my-shop-2"


def test_customers_emails_are_lower_cased() -> None:
    assert new_customer("Ann.Lee+x@Example.COM", "long-password", "").email == "ann.lee+x@example.com"


def test_staff_must_be_owner_or_seller() -> None:
    assert new_staff("a@b.example", "long-password", "", Role.SELLER).role is Role.SELLER
    with pytest.raises(InvalidArgument) as error:
        new_staff("a@b.example", "long-password", "", Role.CUSTOMER)
    assert _fields(error) == ["role"]


def test_page_tokens_round_trip_and_forgeries_are_refused() -> None:
    cursor = paging.Cursor(NOW, "shop")
    assert paging.decode(paging.encode(cursor)) == cursor
    assert paging.decode("") is None
    for forged in ("%%%", "e30", "WzEsMiwzXQ", "WyJ4IiwiYSJd", "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5LCJzaG9wIl0", "é"):
        with pytest.raises(InvalidArgument) as error:
            paging.decode(forged)
        assert _fields(error) == ["page_token"]


def test_staff_see_only_their_own_tenant_and_only_owners_manage_users() -> None:
    admin = Caller("a1", "platform", frozenset({"admin"}))
    owner = Caller("u1", "shop", frozenset({"owner"}))
    seller = Caller("u2", "shop", frozenset({"seller"}))
    check_can_read_tenant(admin, "other")
    check_can_read_tenant(seller, "shop")
    check_can_manage_users(admin, "other")
    check_can_manage_users(owner, "shop")
    for caller, tenant in ((seller, "other"), (owner, "other")):
        with pytest.raises(NotFound):
            check_can_read_tenant(caller, tenant)
    for caller, tenant in ((owner, "other"), (seller, "shop")):
        with pytest.raises(NotFound):
            check_can_manage_users(caller, tenant)
