"""GetPayment and ListPayments: staff and services read the tenant's payments,
newest first, page by page; another tenant's payment does not exist."""

from __future__ import annotations

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from tests.errors import reason_of
from tests.payment.conftest import Shop


async def list_all(shop: Shop, page_size: int, **filters: object) -> list[pb.Payment]:
    found: list[pb.Payment] = []
    token = ""
    while True:
        reply = await shop.payments.ListPayments(pb.ListPaymentsRequest(page_size=page_size, page_token=token,
                                                                        **filters),  # type: ignore[arg-type]
                                                 metadata=shop.seller)
        found.extend(reply.payments)
        token = reply.next_page_token
        if not token:
            return found


async def test_payments_are_listed_newest_first_across_pages(shop: Shop) -> None:
    made = [await shop.authorize(100 + i) for i in range(7)]
    listed = await list_all(shop, 3)
    assert [p.payment_id for p in listed] == [p.payment_id for p in reversed(made)]


async def test_list_filters_by_order_and_status(shop: Shop) -> None:
    first = await shop.authorize(100, order_id="ord-a")
    await shop.authorize(200, sandbox.TOKEN_DECLINED, order_id="ord-a")
    await shop.captured(300)
    by_order = await list_all(shop, 10, order_id="ord-a")
    assert {p.order_id for p in by_order} == {"ord-a"} and len(by_order) == 2
    declined = await list_all(shop, 10, status=pb.PAYMENT_STATUS_DECLINED)
    assert [p.amount.amount_minor for p in declined] == [200]
    authorized = await list_all(shop, 10, order_id="ord-a", status=pb.PAYMENT_STATUS_AUTHORIZED)
    assert [p.payment_id for p in authorized] == [first.payment_id]


async def test_list_shows_refunds_oldest_first(shop: Shop) -> None:
    payment = await shop.captured(1000)
    await shop.refund(payment.payment_id, 100)
    await shop.refund(payment.payment_id, 200)
    [listed] = await list_all(shop, 10)
    assert [r.amount.amount_minor for r in listed.refunds] == [100, 200]


async def test_page_token_only_works_with_the_same_filters(shop: Shop) -> None:
    for _ in range(3):
        await shop.authorize()
    page = await shop.payments.ListPayments(pb.ListPaymentsRequest(page_size=1), metadata=shop.seller)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.ListPayments(pb.ListPaymentsRequest(
            page_size=1, page_token=page.next_page_token, status=pb.PAYMENT_STATUS_CAPTURED), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_tenants_payment_is_not_found(shop: Shop, other_shop: Shop) -> None:
    payment = await shop.captured(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await other_shop.payments.GetPayment(pb.GetPaymentRequest(payment_id=payment.payment_id),
                                             metadata=other_shop.seller)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(caught.value) == "PAYMENT_NOT_FOUND"
    assert (await other_shop.payments.ListPayments(pb.ListPaymentsRequest(), metadata=other_shop.seller)).payments \
        == []
    for call in (other_shop.refund(payment.payment_id, 100),
                 other_shop.capture(payment)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 0


async def test_a_token_of_one_tenant_cannot_name_another(shop: Shop, other_shop: Shop) -> None:
    payment = await shop.authorize()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.GetPayment(pb.GetPaymentRequest(payment_id=payment.payment_id),
                                       metadata=(*other_shop.seller, ("x-tenant-id", shop.tenant)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("roles", [["customer"], ["guest"]])
async def test_shoppers_may_not_read_payments(shop: Shop, roles: list[str]) -> None:
    payment = await shop.authorize()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.GetPayment(pb.GetPaymentRequest(payment_id=payment.payment_id),
                                       metadata=shop.as_(*roles))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reads_need_a_token(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.ListPayments(pb.ListPaymentsRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
