"""Payment events reach JetStream through the outbox, one per change, on the
subjects the proto documents."""

from __future__ import annotations

import nats
from commerce.payment.v1 import payment_events_pb2 as ev
from commerce.payment.v1 import payment_pb2 as pb

from services.devmesh.nats import Nats
from services.runtime.db import Database
from tests.payment.conftest import Shop, count_rows, event_types


async def test_events_of_a_payment_are_published_with_the_payment_after_the_change(
        shop: Shop, payment_db: Database, nats_server: Nats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        payment = await shop.captured(1000)
        await shop.refund(payment.payment_id, 400)
        assert await event_types(payment_db, shop.tenant, nats_server.url) == [
            "PaymentAuthorized", "PaymentCaptured", "PaymentRefunded"]
        assert await count_rows(payment_db, shop.tenant, "outbox") == 0  # published rows are deleted
        refunded = await js.get_last_msg(stream_name=await js.find_stream_name_by_subject(
            f"commerce.payment.v1.payment_refunded.{shop.tenant}"),
            subject=f"commerce.payment.v1.payment_refunded.{shop.tenant}")
        event = ev.PaymentRefunded.FromString(refunded.data or b"")
        assert event.metadata.aggregate_id == payment.payment_id
        assert event.metadata.tenant_id == shop.tenant
        assert event.payment.status == pb.PAYMENT_STATUS_PARTIALLY_REFUNDED
        assert event.refund.amount.amount_minor == 400
        captured = await js.get_last_msg(stream_name=await js.find_stream_name_by_subject(
            f"commerce.payment.v1.payment_captured.{shop.tenant}"),
            subject=f"commerce.payment.v1.payment_captured.{shop.tenant}")
        assert ev.PaymentCaptured.FromString(captured.data or b"").amount.amount_minor == 1000
    finally:
        await nc.close()
