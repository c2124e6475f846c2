"""The payment state machine, request checks, webhook signatures and page tokens,
as pure functions (no server, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.payment.domain import listing, requests, webhook
from services.payment.domain.ids import new_payment_id
from services.payment.domain.payment import Money, Payment, PaymentStatus, Refund
from services.runtime.errors import FailedPrecondition, InvalidArgument, Unauthenticated

NOW = datetime(2026, 11, 24, tzinfo=UTC)
S = PaymentStatus


def payment(status: PaymentStatus = S.AUTHORIZED, amount: int = 1000, captured: int = 0,
            refunded: int = 0) -> Payment:
    return Payment(new_payment_id(), "ord-1", status, "USD", amount, captured, refunded, "sandbox", "ref", "",
                   NOW, NOW)


def refund(amount: int) -> Refund:
    return Refund("rfd_1", amount, "", "re_1", NOW)


def reason(error: pytest.ExceptionInfo[FailedPrecondition]) -> str:
    return error.value.reason


def test_authorized_payment_is_captured_in_full_or_in_part() -> None:
    assert payment().captured(None).captured_minor == 1000
    part = payment().captured(400)
    assert (part.status, part.captured_minor) == (S.CAPTURED, 400)


@pytest.mark.parametrize(("status", "expected"), [
    (S.CAPTURED, "PAYMENT_ALREADY_CAPTURED"), (S.PARTIALLY_REFUNDED, "PAYMENT_ALREADY_CAPTURED"),
    (S.REFUNDED, "PAYMENT_ALREADY_CAPTURED"), (S.VOIDED, "INVALID_PAYMENT_STATUS"),
    (S.DECLINED, "INVALID_PAYMENT_STATUS"), (S.FAILED, "INVALID_PAYMENT_STATUS"),
])
def test_only_an_authorized_payment_can_be_captured(status: PaymentStatus, expected: str) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        payment(status, captured=1000 if status in {S.CAPTURED, S.REFUNDED} else 0).captured(None)
    assert reason(caught) == expected


def test_capture_beyond_the_hold_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        payment(amount=1000).captured(1001)
    assert reason(caught) == "CAPTURE_EXCEEDS_AUTHORIZED"


def test_void_releases_an_authorized_hold_and_leaves_empty_payments_alone() -> None:
    assert payment().voided().status is S.VOIDED
    for status in (S.VOIDED, S.DECLINED, S.FAILED):
        unchanged = payment(status)
        assert unchanged.voided() is unchanged


@pytest.mark.parametrize("status", [S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED])
def test_charged_payment_cannot_be_voided(status: PaymentStatus) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        payment(status, captured=1000).voided()
    assert reason(caught) == "PAYMENT_ALREADY_CAPTURED"


def test_refunds_step_through_partially_refunded_to_refunded() -> None:
    p = payment(S.CAPTURED, captured=1000)
    p = p.refunded(refund(300))
    assert (p.status, p.refunded_minor, p.refundable_minor) == (S.PARTIALLY_REFUNDED, 300, 700)
    p = p.refunded(refund(700))
    assert (p.status, p.refunded_minor, len(p.refunds)) == (S.REFUNDED, 1000, 2)
    with pytest.raises(FailedPrecondition) as caught:
        p.refunded(refund(1))
    assert reason(caught) == "REFUND_EXCEEDS_CAPTURED"


def test_refund_amount_defaults_to_what_is_left_and_never_exceeds_it() -> None:
    p = payment(S.PARTIALLY_REFUNDED, captured=800, refunded=300)
    assert p.refund_amount(None) == 500
    with pytest.raises(FailedPrecondition) as caught:
        p.refund_amount(501)
    assert reason(caught) == "REFUND_EXCEEDS_CAPTURED"


@pytest.mark.parametrize("status", [S.AUTHORIZED, S.VOIDED, S.DECLINED, S.FAILED])
def test_payment_never_captured_cannot_be_refunded(status: PaymentStatus) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        payment(status).refund_amount(None)
    assert reason(caught) == "PAYMENT_NOT_CAPTURED"


def test_crossed_order_id_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        payment().check_order("ord-2")
    assert reason(caught) == "PAYMENT_ORDER_MISMATCH"
    payment().check_order("ord-1")


def test_authorize_request_names_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        requests.authorize("", "", Money("usd", 0), "", "nope")
    assert sorted(v.field for v in caught.value.violations) == [
        "amount.amount_minor", "amount.currency_code", "order_id", "payment_token", "provider", "request_id"]
    ok = requests.authorize("r-1", "ord-1", Money("USD", 1), "tok_sandbox_ok", "")
    assert ok.provider == "sandbox"


def test_amount_in_another_currency_is_refused() -> None:
    assert requests.same_currency(None, "USD") is None
    assert requests.same_currency(Money("USD", 5), "USD") == 5
    with pytest.raises(InvalidArgument):
        requests.same_currency(Money("EUR", 5), "USD")


def test_webhook_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event_id": "e1"}'
    good = webhook.sign("secret", body)
    webhook.verify_signature("secret", body, good)
    webhook.verify_signature("secret", body, "sha256=" + good)
    for secret, header, expected in [("secret", good[:-1] + "0", "BAD_WEBHOOK_SIGNATURE"),
                                     ("secret", None, "WEBHOOK_SIGNATURE_REQUIRED"),
                                     ("other", good, "BAD_WEBHOOK_SIGNATURE"),
                                     ("", good, "WEBHOOK_SECRET_NOT_CONFIGURED")]:
        with pytest.raises(Unauthenticated) as caught:
            webhook.verify_signature(secret, body, header)
        assert caught.value.reason == expected


def test_webhook_body_is_parsed_strictly() -> None:
    event = webhook.parse_event(b'{"event_id": "e1", "type": "payment.refunded", "provider_reference": "p",'
                                b' "amount_minor": 5, "refund_reference": "r"}')
    assert (event.event_id, event.amount_minor, event.refund_reference) == ("e1", 5, "r")
    for bad in (b'{"event_id": "e1", "type": "payment.captured"}',
                b'{"event_id": "e1", "type": "payment.captured", "provider_reference": "p", "amount_minor": true}',
                b'{"event_id": "e1", "type": "payment.captured", "provider_reference": "p", "amount_minor": -1}'):
        with pytest.raises(InvalidArgument):
            webhook.parse_event(bad)


def test_page_token_round_trips_and_is_bound_to_its_filters() -> None:
    wanted = listing.payment_filter("ord-1", "CAPTURED")
    last = new_payment_id()
    token = listing.encode_token(last, wanted)
    assert listing.list_query(wanted, 0, token) == listing.ListQuery(wanted, 20, last)
    with pytest.raises(InvalidArgument):
        listing.decode_token(token, replace(wanted, status=None))
    assert listing.page_size(1000) == listing.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        listing.payment_filter("", "42")
