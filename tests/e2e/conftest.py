"""Two tenants with a seller and a customer each, created through the edge of the
session's mesh (the ``mesh``, ``rest`` and ``admin`` fixtures of tests/e2e/harness.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.harness import Account, Shop, open_shop


@pytest.fixture(scope="session")
def shop_a(rest: httpx.Client, admin: Account) -> Shop:
    return open_shop(rest, admin, "shop-a")


@pytest.fixture(scope="session")
def shop_b(rest: httpx.Client, admin: Account) -> Shop:
    return open_shop(rest, admin, "shop-b")
