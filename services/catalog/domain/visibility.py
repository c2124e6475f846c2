"""Which products a caller sees.

Staff (admin, owner, seller) and other services see every status. Shoppers
(customers, guests) see ACTIVE products, and ARCHIVED ones too when they ask for
them (by id, or by listing with that status), so their order history still
resolves. DRAFT products do not exist for shoppers: NOT_FOUND by id, and listing
with status DRAFT is PERMISSION_DENIED.
"""

from __future__ import annotations

from services.catalog.domain.ids import product_not_found
from services.catalog.domain.product import ProductStatus
from services.runtime.context import SERVICE, STAFF_ROLES, Caller
from services.runtime.errors import PermissionDenied

ALL_STATUSES = frozenset(ProductStatus)
SHOPPER_VISIBLE = frozenset({ProductStatus.ACTIVE, ProductStatus.ARCHIVED})
_SEES_ALL = STAFF_ROLES | {SERVICE}


def sees_every_status(caller: Caller) -> bool:
    return caller.has_any(_SEES_ALL)


def check_visible(caller: Caller, product_id: str, status: ProductStatus) -> None:
    if status not in SHOPPER_VISIBLE and not sees_every_status(caller):
        raise product_not_found(product_id)


def listed_statuses(caller: Caller, requested: ProductStatus | None) -> frozenset[ProductStatus]:
    """The statuses a ListProducts call returns; ``requested`` None means unspecified."""
    if sees_every_status(caller):
        return ALL_STATUSES if requested is None else frozenset({requested})
    if requested is None:
        return frozenset({ProductStatus.ACTIVE})
    if requested not in SHOPPER_VISIBLE:
        raise PermissionDenied("draft products are visible to the tenant's staff only",
                               reason="STATUS_NOT_VISIBLE", metadata={"status": requested.value})
    return frozenset({requested})
