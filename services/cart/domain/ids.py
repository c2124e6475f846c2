"""Cart ids: "crt_" + a ULID (services/runtime/ids.py), and the catalog's product
ids ("prd_" + a ULID) as requests name them: anything unlike one cannot be in a cart."""

from __future__ import annotations

from services.runtime.ids import ResourceIds

CARTS = ResourceIds("crt_", "cart")
new_cart_id = CARTS.new

PRODUCTS = ResourceIds("prd_", "product")
product_not_found = PRODUCTS.not_found
requested_product_id = PRODUCTS.requested
