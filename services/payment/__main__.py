"""python -m services.payment: the payment service (payments, refunds, provider webhooks)."""

from __future__ import annotations

from services.payment.app import build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("payment", build)
