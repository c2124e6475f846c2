"""Order ids: "ord_" + a ULID (services/runtime/ids.py): newest first is order_id descending."""

from __future__ import annotations

from services.runtime.ids import ResourceIds

ORDERS = ResourceIds("ord_", "order")
new_order_id = ORDERS.new
is_order_id = ORDERS.is_valid
order_not_found = ORDERS.not_found
requested_order_id = ORDERS.requested
