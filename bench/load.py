"""Load shapes for benchmarks whose caller is Python (asyncio): closed loop (N callers back to
back), open loop (calls started on a fixed schedule whatever the answers' speed: no
coordinated omission, latency counted from the scheduled start) and sequential (one caller).

A call takes one item of a finite supply (e.g. a seeded guest cart) and raises on failure;
when the supply runs out the run ends early and says so (``ran_out``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc

T = TypeVar("T")


@dataclass(frozen=True)
class Measured:
    per_s: float  # successful calls finished in the measured window, per second
    p50_ms: float
    p99_ms: float
    calls: int  # successful calls started in the measured window
    errors: int
    seconds: float  # length of the measured window
    offered_per_s: float | None = None  # open loop: the arrival rate asked for
    ran_out: bool = False  # the supply ended before the window did
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Run(Generic[T]):
    """What one run recorded, measured from ``measure_from`` (monotonic)."""

    measure_from: float
    latencies: list[float] = field(default_factory=list)  # seconds, calls started in the window
    finished: list[float] = field(default_factory=list)  # seconds after measure_from, every success
    errors: Counter[str] = field(default_factory=Counter)
    ran_out: bool = False

    def ok(self, began: float, now: float) -> None:
        if began >= self.measure_from:
            self.latencies.append(now - began)
        self.finished.append(now - self.measure_from)

    def failed(self, began: float, error: BaseException) -> None:
        if began >= self.measure_from:
            self.errors[describe(error)] += 1

    def rate(self, start: float, end: float) -> float:
        """Successful calls per second that finished between ``start`` and ``end`` (window seconds)."""
        return sum(1 for t in self.finished if start <= t < end) / (end - start) if end > start else 0.0

    def measured(self, seconds: float, offered: float | None = None) -> Measured:
        return Measured(round(self.rate(0.0, seconds), 1), round(percentile(self.latencies, 0.5) * 1000, 2),
                        round(percentile(self.latencies, 0.99) * 1000, 2), len(self.latencies),
                        sum(self.errors.values()), round(seconds, 1), offered, self.ran_out, dict(self.errors))


def describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return str(error.code().name)
    return type(error).__name__ + (f": {error}" if str(error) else "")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Call = Callable[[T], Awaitable[None]]


async def closed_loop(call: Call[T], supply: Iterator[T], callers: int, warmup_s: float,
                      duration_s: float) -> tuple[Run[T], float]:
    """``callers`` callers back to back for ``warmup_s`` + ``duration_s``; the run and its
    measured seconds (shorter when the supply ran out)."""
    start = time.monotonic()
    run: Run[T] = Run(start + warmup_s)
    end = run.measure_from + duration_s

    async def caller() -> None:
        while (began := time.monotonic()) < end:
            item = next(supply, None)
            if item is None:
                run.ran_out = True
                return
            try:
                await call(item)
            except Exception as error:  # counted, not raised: it is a benchmark
                run.failed(began, error)
                continue
            run.ok(began, time.monotonic())

    await asyncio.gather(*(caller() for _ in range(callers)))
    return run, max(0.0, min(end, time.monotonic()) - run.measure_from)


async def open_loop(call: Call[T], supply: Iterator[T], rate: float, warmup_s: float,
                    duration_s: float) -> tuple[Run[T], float]:
    """Calls started at ``rate`` per second, each timed from when it was due."""
    start = time.monotonic()
    run: Run[T] = Run(start + warmup_s)
    tasks: list[asyncio.Task[None]] = []

    async def one(item: T, due: float) -> None:
        try:
            await call(item)
        except Exception as error:
            run.failed(due, error)
            return
        run.ok(due, time.monotonic())

    for n in range(int(rate * (warmup_s + duration_s))):
        due = start + n / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        item = next(supply, None)
        if item is None:
            run.ran_out = True
            break
        tasks.append(asyncio.create_task(one(item, due)))
    await asyncio.gather(*tasks)
    # the window is the schedule's (answers that came later are in the latencies)
    return run, max(0.0, min(duration_s, (len(tasks) / rate) - warmup_s))


async def sequential(call: Call[T], supply: Iterator[T], warmup_calls: int, calls: int) -> tuple[Run[T], float]:
    """One caller, ``warmup_calls`` then ``calls`` measured calls."""
    run: Run[T] = Run(float("inf"))
    for n in range(warmup_calls + calls):
        item = next(supply, None)
        if item is None:
            run.ran_out = True
            break
        if n == warmup_calls:
            run.measure_from = time.monotonic()
        began = time.monotonic()
        try:
            await call(item)
        except Exception as error:
            run.failed(began, error)
            continue
        run.ok(began, time.monotonic())
    return run, max(0.0, time.monotonic() - run.measure_from)
