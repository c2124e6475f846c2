"""Password hashing is bounded: argon2 takes 64 MiB per hash while it runs, so at most
COMMERCE_LOGIN_HASH_CONCURRENCY run at once in a tenant process; a login waits for a slot
at most COMMERCE_LOGIN_QUEUE_SECONDS (or until its deadline), then RESOURCE_EXHAUSTED
PASSWORD_HASHING_BUSY. Real argon2, and a real tenant service for the RPC."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Literal

import grpc
import pytest
from argon2 import PasswordHasher

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.context import reset_deadline, set_deadline
from services.runtime.errors import ResourceExhausted
from services.tenant.passwords import Passwords
from tests.tenant.harness import ADMIN_EMAIL, ADMIN_PASSWORD, failure_of, one_slot_tenant


class _CountingHasher(PasswordHasher):
    """argon2 as it is, counting how many hashes run at the same moment."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._gate = gate  # when given, a verification does not end before it is set
        self.running = 0
        self.most = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if self._gate is not None:
                self._gate.wait(10)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


async def test_a_burst_of_verifications_runs_at_most_the_cap_at_once_and_all_finish() -> None:
    hasher = _CountingHasher()
    passwords = Passwords(hasher, concurrency=2, queue_seconds=60)
    stored = await passwords.hash("secret")
    results = await asyncio.gather(*(passwords.verify(stored, "secret" if i % 2 else "wrong") for i in range(10)))
    assert results == [bool(i % 2) for i in range(10)]
    assert hasher.most == 2  # the burst did fill both slots, never more
    await passwords.close()


async def test_a_cancelled_login_keeps_its_slot_until_its_hash_is_done() -> None:
    gate = threading.Event()
    hasher = _CountingHasher(gate)
    passwords = Passwords(hasher, concurrency=1, queue_seconds=0.2)
    stored = await passwords.hash("secret")
    first = asyncio.create_task(passwords.verify(stored, "secret"))
    for _ in range(500):  # until its hash runs (holding the one slot)
        if hasher.running:
            break
        await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(ResourceExhausted):  # its hash still runs: the slot is not free
        await passwords.verify(stored, "secret")
    gate.set()
    assert await passwords.verify(stored, "secret") is True  # free once that hash is done
    assert hasher.most == 1
    await passwords.close()


async def test_logins_past_the_queue_time_get_resource_exhausted_and_the_others_log_in(
        postgres: Postgres, nats_server: Nats, tmp_path: Path) -> None:
    running, client = await one_slot_tenant(postgres.url, nats_server.url, "tpwbusy", tmp_path, queue_seconds=0.05)
    try:
        outcomes: list[Any] = await asyncio.gather(
            *(failure_of(client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)) for _ in range(6)),
            return_exceptions=True)
        refused = [o for o in outcomes if not isinstance(o, AssertionError)]
        logged_in = [o for o in outcomes if isinstance(o, AssertionError)]  # failure_of: "the call succeeded"
        assert logged_in, "the first login gets the slot"
        assert refused, "six logins at once with one slot and 50 ms of queue cannot all be served"
        assert {(f.code, f.reason) for f in refused} == {(grpc.StatusCode.RESOURCE_EXHAUSTED, "PASSWORD_HASHING_BUSY")}

    finally:
        await client.close()
        await running.stop(0)


async def test_a_call_whose_deadline_comes_before_the_queue_time_is_refused_by_then() -> None:
    passwords = Passwords(concurrency=1, queue_seconds=60)
    stored = await passwords.hash("secret")
    holders = [asyncio.create_task(passwords.verify(stored, "secret")) for _ in range(3)]
    await asyncio.sleep(0.01)
    token = set_deadline(0.2)  # what the interceptor sets from the gRPC call's deadline
    started = time.monotonic()
    try:
        with pytest.raises(ResourceExhausted) as refused:
            await passwords.verify(stored, "secret")
    finally:
        reset_deadline(token)
    assert refused.value.reason == "PASSWORD_HASHING_BUSY"
    assert 0.15 < time.monotonic() - started < 1.0
    assert await asyncio.gather(*holders) == [True] * 3
    await passwords.close()
