"""Tokens refused before they expire: those of a suspended tenant and of a deleted user.

A signed token cannot be taken back, so every service keeps a list of what was
revoked and checks each token against it after its signature
(``TokenVerifier``). The list is fed by the tenant service's integration
events ``TenantSuspended`` and ``UserDeleted``, read from JetStream by an
ephemeral ordered consumer in every process. It starts ``remember_seconds``
back (the longest a token lives, plus the clock leeway), so a process that
starts later still learns every revocation that matters, and forgets an entry
once every token it refuses has expired anyway.

A token is refused when it was issued at or before the revocation. While NATS
is away the list stands still (the services keep serving); a revocation made
meanwhile takes effect when NATS is back. The tenant service itself also
refuses logins of suspended tenants and deleted users from its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from commerce.tenant.v1 import tenant_events_pb2
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from services.runtime.errors import Unauthenticated
from services.runtime.events import naming
from services.runtime.events.connection import NatsAuth, NatsConnection
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.revocations")
REVOKED = Gauge("commerce_revocations", "Revocations this process refuses tokens for", ["kind"])
FOLLOWING = Gauge("commerce_revocations_following",
                  "1 while this process follows the revocation feed (NATS connected, subscribed); 0 while "
                  "revocations made meanwhile may be missing")
REFUSED = Counter("commerce_revoked_tokens_refused_total", "Tokens refused because they were revoked", ["reason"])

SUSPENDED = naming.subject_pattern(tenant_events_pb2.TenantSuspended.DESCRIPTOR)
DELETED = naming.subject_pattern(tenant_events_pb2.UserDeleted.DESCRIPTOR)


class RevocationList:
    """When each tenant was suspended and each user deleted (epoch seconds)."""

    def __init__(self, remember_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.remember_seconds = remember_seconds
        self._clock = clock
        self._tenants: dict[str, float] = {}
        self._users: dict[tuple[str, str], float] = {}
        # Old entries are swept at most this often, not on every event: a (re)subscribe replays
        # every revocation of the last remember_seconds at once, and sweeping on each of them
        # would cost time quadratic in their number, on the event loop.
        self._sweep_every = remember_seconds / 10
        self._swept_at = float("-inf")

    def revoke_tenant(self, tenant_id: str, at: float) -> None:
        self._tenants[tenant_id] = max(at, self._tenants.get(tenant_id, at))
        self._forget_old()

    def revoke_user(self, tenant_id: str, user_id: str, at: float) -> None:
        key = (tenant_id, user_id)
        self._users[key] = max(at, self._users.get(key, at))
        self._forget_old()

    def check(self, tenant_id: str, subject: str, issued_at: float) -> None:
        """Raises Unauthenticated when the token (its tenant and subject claims, issued at
        ``issued_at``) was revoked."""
        if not self._tenants and not self._users:
            return
        suspended = self._tenants.get(tenant_id)
        if suspended is not None and issued_at <= suspended:
            REFUSED.labels("TENANT_SUSPENDED").inc()
            raise Unauthenticated("the tenant of this token is suspended", reason="TENANT_SUSPENDED")
        deleted = self._users.get((tenant_id, subject))
        if deleted is not None and issued_at <= deleted:
            REFUSED.labels("USER_DELETED").inc()
            raise Unauthenticated("the user of this token was deleted", reason="USER_DELETED")

    def _forget_old(self) -> None:
        """Drop entries older than ``remember_seconds`` (every token they refuse has expired;
        one kept a little longer refuses nothing more)."""
        now = self._clock()
        if now - self._swept_at >= self._sweep_every:
            self._swept_at = now
            cutoff = now - self.remember_seconds
            self._tenants = {k: at for k, at in self._tenants.items() if at >= cutoff}
            self._users = {k: at for k, at in self._users.items() if at >= cutoff}
        REVOKED.labels("tenant").set(len(self._tenants))
        REVOKED.labels("user").set(len(self._users))

    def apply(self, subject: str, payload: bytes) -> None:
        """Record one TenantSuspended or UserDeleted event (as published on ``subject``)."""
        tenant_id = subject.rsplit(".", 1)[-1]
        try:
            if subject.startswith(SUSPENDED[:-1]):
                suspended = tenant_events_pb2.TenantSuspended.FromString(payload)
                if suspended.metadata.tenant_id == tenant_id:
                    self.revoke_tenant(tenant_id, suspended.metadata.occur_time.ToDatetime(UTC).timestamp())
                    return
            elif subject.startswith(DELETED[:-1]):
                deleted = tenant_events_pb2.UserDeleted.FromString(payload)
                if deleted.metadata.tenant_id == tenant_id == deleted.tenant_id and deleted.user_id:
                    self.revoke_user(tenant_id, deleted.user_id,
                                     deleted.metadata.occur_time.ToDatetime(UTC).timestamp())
                    return
        except DecodeError:
            pass
        log.warning("ignoring a revocation event that does not add up", subject=subject)


class RevocationFeed:
    """Keeps a RevocationList current from JetStream. Each (re)connect subscribes
    afresh from ``remember_seconds`` back (applying an event twice changes nothing),
    so an outage of NATS or a lost consumer cannot leave a gap."""

    def __init__(self, revocations: RevocationList, nats_url: str, name: str, replicas: int = 1,
                 auth: NatsAuth | None = None) -> None:
        self.revocations = revocations
        self._nats = NatsConnection(nats_url, f"{name}-revocations", replicas=replicas,
                                    on_connected=self._connected, auth=auth)
        self._subscriptions: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        FOLLOWING.set_function(lambda: float(self.following))

    @property
    def following(self) -> bool:
        """True while connected and subscribed: every revocation up to now is known. False from
        start-up until NATS answers, and from a disconnect until the feed is replayed again."""
        return self._nats.connected and self.subscribed.is_set()

    async def following_probe(self) -> bool:
        return self.following

    async def start(self) -> None:
        await self._nats.start()

    def _connected(self) -> None:
        self.subscribed.clear()  # replayed afresh below
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.create_task(self._subscribe(), name="revocation-feed")

    async def _subscribe(self) -> None:
        js = await self._nats.wait_ready()
        for old in self._subscriptions:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._subscriptions = []
        since = datetime.now(UTC) - timedelta(seconds=self.revocations.remember_seconds)
        delay = 0.5
        while True:
            try:
                for subject in (SUSPENDED, DELETED):
                    self._subscriptions.append(await js.subscribe(
                        subject, stream=naming.STREAM, cb=self._received, ordered_consumer=True,
                        idle_heartbeat=5.0,
                        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)))
                self.subscribed.set()
                log.info("following revocations", since=since.isoformat())
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream may not exist yet: the connection creates it
                log.warning("cannot follow revocations yet; retrying", error=str(exc))
                for sub in self._subscriptions:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                self._subscriptions = []
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _received(self, msg: Msg) -> None:
        self.revocations.apply(msg.subject, msg.data)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subscriptions = []
        await self._nats.close()
