"""One NATS connection for a service's relay or consumer: connects in the background
(start-up never waits for NATS), reconnects forever, and makes sure the JetStream
streams exist each time it (re)connects."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import APIError
from prometheus_client import Gauge

from services.runtime.events import naming
from services.runtime.settings import Settings
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.events.nats")
NATS_CONNECTED = Gauge("commerce_nats_connected", "1 while this process is connected to NATS", ["client"])
_MAX_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class NatsAuth:
    """Who this process is to NATS, and the CA its TLS certificate is checked against."""

    user: str = ""
    password: str = ""
    tls_ca_file: Path | None = None
    # The event streams' byte limit (Settings.nats_stream_max_bytes), applied when they are made.
    stream_max_bytes: int = -1

    @classmethod
    def of(cls, settings: Settings) -> NatsAuth:
        return cls(settings.nats_user, settings.nats_password.get_secret_value(), settings.nats_tls_ca_file,
                   settings.nats_stream_max_bytes)

    def options(self, url: str = "") -> dict[str, object]:
        """nats.connect's keywords. With TLS, every server (also those the cluster announces by
        address) must present a certificate for the first URL's host name (the Service's)."""
        options: dict[str, object] = {}
        if self.user:
            options.update(user=self.user, password=self.password)
        if self.tls_ca_file is not None:
            options["tls"] = ssl.create_default_context(cafile=str(self.tls_ca_file))
            host = urlsplit(url.split(",")[0].strip()).hostname if url else None
            if host:
                options["tls_hostname"] = host
        return options


def without_credentials(url: str) -> str:
    """``url`` as logs may show it: any user and password taken out."""
    parts = [urlsplit(u.strip()) for u in url.split(",") if u.strip()]
    return ",".join(urlunsplit(p._replace(netloc=p.hostname + (f":{p.port}" if p.port else "") if p.hostname
                                          else p.netloc)) for p in parts)


def stream_configs(replicas: int = 1, max_bytes: int = -1) -> list[StreamConfig]:
    dlq_bytes = -1 if max_bytes < 0 else max(1, max_bytes // 8)
    return [
        StreamConfig(name=naming.STREAM, subjects=naming.STREAM_SUBJECTS, storage=StorageType.FILE,
                     duplicate_window=120.0, max_age=naming.STREAM_MAX_AGE_SECONDS, num_replicas=replicas,
                     max_bytes=max_bytes),
        StreamConfig(name=naming.DLQ_STREAM, subjects=naming.DLQ_SUBJECTS, storage=StorageType.FILE,
                     max_age=naming.DLQ_MAX_AGE_SECONDS, num_replicas=replicas, max_bytes=dlq_bytes),
    ]


async def ensure_streams(js: JetStreamContext, replicas: int = 1, max_bytes: int = -1) -> None:
    """Create the streams, or bring an existing one to our configuration (idempotent)."""
    for config in stream_configs(replicas, max_bytes):
        try:
            await js.add_stream(config)
        except APIError:  # exists with another configuration
            await js.update_stream(config)


class NatsConnection:
    def __init__(self, url: str, name: str, *, replicas: int = 1, retry_seconds: float = 0.5,
                 on_connected: Callable[[], None] | None = None, auth: NatsAuth | None = None) -> None:
        """``url``: one server, or several separated by commas (a cluster). ``on_connected``
        is called after each connect and reconnect. ``auth``: user, password and TLS CA."""
        self._on_connected = on_connected
        self._auth = auth or NatsAuth()
        self.url = url
        self.name = name
        self._replicas = replicas
        self._closing = False
        self._warned = False
        self._retry_seconds = retry_seconds
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gauge = NATS_CONNECTED.labels(name)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and self._ready.is_set()

    @property
    def js(self) -> JetStreamContext | None:
        """The JetStream context while connected, else None."""
        return self._js if self.connected else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name=f"nats-connect-{self.name}")

    async def wait_ready(self) -> JetStreamContext:
        await self._ready.wait()
        assert self._js is not None
        return self._js

    async def _on_reconnected(self) -> None:
        self._gauge.set(1)
        self._warned = False
        log.info("nats reconnected", client=self.name)
        if self._js is not None:
            try:
                await ensure_streams(self._js, self._replicas, self._auth.stream_max_bytes)
            except Exception as exc:
                log.warning("could not ensure streams after reconnect", error=str(exc))
        if self._on_connected is not None:
            self._on_connected()

    async def _on_disconnected(self) -> None:
        self._gauge.set(0)
        if not self._closing:
            log.warning("nats disconnected; reconnecting in the background", client=self.name)

    async def _on_error(self, exc: Exception) -> None:
        if not self._warned and not self.connected and not self._closing:  # once per outage
            self._warned = True
            log.warning("nats unavailable; retrying in the background", client=self.name,
                        url=without_credentials(self.url), error=str(exc))
        else:
            log.debug("nats error", client=self.name, error=str(exc))

    async def _connect_forever(self) -> None:
        delay = self._retry_seconds
        while True:
            nc: Client | None = None
            try:
                nc = await nats.connect(
                    servers=[u.strip() for u in self.url.split(",") if u.strip()], name=self.name,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    connect_timeout=2, allow_reconnect=True,
                    reconnected_cb=self._on_reconnected, disconnected_cb=self._on_disconnected,
                    error_cb=self._on_error, **self._auth.options(self.url),
                )
                js = nc.jetstream()
                await ensure_streams(js, self._replicas, self._auth.stream_max_bytes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._on_error(exc)
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
                continue
            self._nc, self._js = nc, js
            self._gauge.set(1)
            self._ready.set()
            self._warned = False
            log.info("nats connected", url=without_credentials(self.url), client=self.name)
            if self._on_connected is not None:
                self._on_connected()
            return

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(self._task)
        self._task = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._js = None
        self._ready.clear()
        self._gauge.set(0)
