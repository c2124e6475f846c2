"""Payment and refund ids: a prefix + a ULID (services/runtime/ids.py)."""

from __future__ import annotations

from services.runtime.ids import ResourceIds

PAYMENTS = ResourceIds("pay_", "payment")
REFUNDS = ResourceIds("rfd_", "refund")
new_payment_id = PAYMENTS.new
new_refund_id = REFUNDS.new
is_payment_id = PAYMENTS.is_valid
payment_not_found = PAYMENTS.not_found
requested_payment_id = PAYMENTS.requested
