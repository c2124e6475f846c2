"""A graceful stop lets the calls in flight finish with everything they use: health turns
NOT_SERVING, the server stops taking calls and gives those in flight the grace period, and
only then are the database and the relay closed (closing them first failed those calls)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.tenant.passwords import Passwords
from tests.tenant.harness import ADMIN_EMAIL, ADMIN_PASSWORD, one_slot_tenant


async def test_logins_in_flight_when_the_stop_begins_all_succeed(
        postgres: Postgres, nats_server: Nats, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One hashing slot: the logins queue, so most of them are still waiting (and still need the
    # database afterwards) when the stop begins.
    hashing: list[int] = []
    real = Passwords._run

    async def counted(self: Passwords, *args: object) -> object:
        hashing.append(1)
        return await real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Passwords, "_run", counted)
    running, client = await one_slot_tenant(postgres.url, nats_server.url, "tgrace", tmp_path, queue_seconds=30)
    try:
        started = len(hashing)  # the service's own (its dummy hash)
        logins = [asyncio.ensure_future(client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)) for _ in range(6)]
        # In flight: every login has reached its handler (a call the server has not taken up yet
        # is cancelled by the stop, as gRPC servers do: that is not what this test is about).
        for _ in range(500):
            if len(hashing) - started >= 6:
                break
            await asyncio.sleep(0.01)
        assert len(hashing) - started >= 6, "the logins never reached the service"
        assert not all(login.done() for login in logins)
        await running.stop(20)
        tokens = await asyncio.gather(*logins)
        assert all(tokens)
        # And a call after the stop is refused, not served.
        try:
            await client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
            raise AssertionError("a stopped server answered")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await client.close()
