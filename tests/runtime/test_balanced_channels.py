"""Calls between services spread over every replica behind one name (services/runtime/channels.py):
a DNS server of the test answers the name with two loopback addresses, as a headless Service
answers with its pods; two real tenant replicas listen on the same port there, each with its own
signing key, so the key in a JWKS answer tells which replica served it. Both receive calls; a
replica stopping as Kubernetes stops it (graceful) loses no call."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RR, A, DNSRecord  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSServer  # type: ignore[import-untyped]

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.channels import target_of
from services.runtime.jwks_client import remote_jwks
from services.runtime.server import Running, create_server
from services.tenant.app import build
from tests.conftest import free_port
from tests.tenant.harness import make_settings

NAME = "tenant.replicas.test."
REPLICAS = ("127.0.0.2", "127.0.0.3")


class _Replicas(BaseResolver):  # type: ignore[misc]
    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        if str(request.q.qname) == NAME and request.q.qtype == QTYPE.A:
            for address in REPLICAS:
                reply.add_answer(RR(NAME, QTYPE.A, rdata=A(address), ttl=1))
        return reply


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dns() -> Iterator[int]:
    port = _free_udp_port()
    server = DNSServer(_Replicas(), port=port, address="127.0.0.1")
    server.start_thread()
    yield port
    server.stop()


async def _replica(postgres: Postgres, nats: Nats, tmp: Path, address: str) -> Running:
    settings = make_settings(postgres.url, "tbalanced", tmp, nats_url=nats.url)
    return await create_server(await build(settings), address, probe_seconds=0.5)


def test_a_plain_address_is_resolved_by_grpc_and_a_target_is_kept() -> None:
    assert target_of("catalog:50052") == "dns:///catalog:50052"
    assert target_of("dns://10.0.0.10:53/catalog:50052") == "dns://10.0.0.10:53/catalog:50052"


async def test_both_replicas_get_calls_and_a_graceful_stop_loses_none(
        postgres: Postgres, nats_server: Nats, tmp_path: Path, dns: int) -> None:
    port = free_port()
    first = await _replica(postgres, nats_server, tmp_path / "a", f"{REPLICAS[0]}:{port}")
    second = await _replica(postgres, nats_server, tmp_path / "b", f"{REPLICAS[1]}:{port}")
    try:
        await _spread_and_stop(first, second, port, dns)
    finally:
        await first.stop(0)
        await second.stop(0)


async def _spread_and_stop(first: Running, second: Running, port: int, dns: int) -> None:
    kid_of = {}
    for name, address in (("first", REPLICAS[0]), ("second", REPLICAS[1])):
        direct = await remote_jwks(f"{address}:{port}")()
        kid_of[direct[0]["kid"]] = name
    assert len(kid_of) == 2, "each replica signs with its own key here"

    fetch = remote_jwks(f"dns://127.0.0.1:{dns}/{NAME.rstrip('.')}:{port}")  # the services' own JWKS client
    served = Counter([kid_of[(await fetch())[0]["kid"]] for _ in range(40)])
    assert set(served) == {"first", "second"}, served
    assert min(served.values()) >= 10, f"round robin spreads the calls: {served}"

    # Callers keep calling while the first replica stops (SERVING -> NOT_SERVING, GOAWAY, grace).
    answers: Counter[str] = Counter()
    failures: list[BaseException] = []
    stopping = asyncio.Event()

    async def caller() -> None:
        while not stopping.is_set() or sum(answers.values()) < 400:
            try:
                answers[kid_of[(await fetch())[0]["kid"]]] += 1
            except Exception as error:  # every failure is the finding
                failures.append(error)
            if stopping.is_set() and answers["second"] > 200:
                return

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    await asyncio.sleep(0.3)
    await first.stop(2.0)
    stopping.set()
    await asyncio.wait_for(asyncio.gather(*callers), timeout=60)
    assert failures == [], failures[:3]
    assert answers["first"] > 0 and answers["second"] > 200, answers
