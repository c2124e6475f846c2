"""Password hashing with Argon2id (argon2-cffi), off the event loop, bounded.

``verify`` with no stored hash still spends the time of one verification
(against a dummy hash), so a login with an unknown email takes as long as one
with a wrong password: response times do not reveal which emails exist.

Each hash or verification holds ``memory_cost`` KiB (64 MiB by default) while it runs, so
at most ``concurrency`` run at once, on threads of their own (never the loop's default
executor, which allows cores + 4). A call waits for a free slot at most ``queue_seconds``
(less when its gRPC deadline comes sooner), then answers RESOURCE_EXHAUSTED
``PASSWORD_HASHING_BUSY``: a burst of logins costs time, never the pod's memory
(measured by ``python -m bench.passwords``; the tenant pod's limit is sized from it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

from services.runtime.context import seconds_left
from services.runtime.errors import ResourceExhausted

T = TypeVar("T")
BUSY = Counter("commerce_password_hashing_busy_total",
               "Password hashes refused because every hashing slot stayed taken (RESOURCE_EXHAUSTED)")


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None, concurrency: int = 2,
                 queue_seconds: float = 2.0) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self.concurrency = max(1, concurrency)
        self._queue_seconds = queue_seconds
        self._slots = asyncio.Semaphore(self.concurrency)
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        if stored_hash is None:
            await self._run(self._verify, await self._dummy(), password)
            return False
        return await self._run(self._verify, stored_hash, password)

    async def prepare(self) -> None:
        """Compute the dummy hash up front, so even the first unknown email costs one verify."""
        await self._dummy()

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[str, str], T] | Callable[[str], T], *args: str) -> T:
        try:
            async with asyncio.timeout(seconds_left(self._queue_seconds)):
                await self._slots.acquire()
        except TimeoutError:
            BUSY.inc()
            raise ResourceExhausted("too many logins at once; retry in a moment",
                                    reason="PASSWORD_HASHING_BUSY") from None
        loop = asyncio.get_running_loop()
        try:
            running = self._threads.submit(work, *args)  # type: ignore[arg-type]
        except BaseException:
            self._slots.release()
            raise
        # The slot is free when the thread is done (its memory released), not when the caller
        # stops waiting: a cancelled login's hash still runs to its end.
        running.add_done_callback(lambda _: loop.call_soon_threadsafe(self._slots.release))
        return await asyncio.wrap_future(running)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
