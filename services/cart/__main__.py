"""python -m services.cart: the cart service (one open cart per shopper, priced from the catalog)."""

from __future__ import annotations

from services.cart.app import build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("cart", build)
