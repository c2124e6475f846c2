"""Product ids: "prd_" + a ULID (services/runtime/ids.py); byte-wise order is the
order of the keyset pagination."""

from __future__ import annotations

from services.runtime.ids import ResourceIds

PRODUCTS = ResourceIds("prd_", "product")
new_product_id = PRODUCTS.new
new_product_ids = PRODUCTS.run
is_product_id = PRODUCTS.is_valid
product_not_found = PRODUCTS.not_found
requested_product_id = PRODUCTS.requested
