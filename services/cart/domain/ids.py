"""Cart ids: "crt_" + a ULID (services/runtime/ids.py)."""

from __future__ import annotations

from services.runtime.ids import ResourceIds

CARTS = ResourceIds("crt_", "cart")
new_cart_id = CARTS.new
