"""Which tenants a caller may see and manage. The method's declared access rule
has already checked the role; this checks the tenant. A tenant a caller may not
see is reported as absent (NOT_FOUND), so tenants cannot be probed."""

from __future__ import annotations

from services.runtime.context import ADMIN, OWNER, Caller
from services.tenant.domain.tenant import tenant_not_found


def check_can_read_tenant(caller: Caller, tenant_id: str) -> None:
    """Admins read every tenant; a tenant's staff only their own."""
    if ADMIN in caller.roles:
        return
    if caller.tenant_id != tenant_id:
        raise tenant_not_found()


def check_can_manage_users(caller: Caller, tenant_id: str) -> None:
    """Admins manage the users of every tenant; an owner those of their own tenant."""
    if ADMIN in caller.roles:
        return
    if OWNER not in caller.roles or caller.tenant_id != tenant_id:
        raise tenant_not_found()
