"""CPU samples taken every second during a run, to tell what a slice of it (e.g. the soak's
first and last 10 s) cost: orders/s, mesh CPU per order, and how busy the rest of the machine
was (a slice the machine shared with more work is not comparable with one it did not)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import CpuClock, CpuSample, used
from bench.load import Run

EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Slice:
    start: float  # seconds after the run's measured window began
    end: float
    orders_per_s: float
    mesh_ms_per_order: float
    other_cores: float  # processes neither of the mesh nor of the benchmark

    def as_json(self) -> dict[str, Any]:
        return {"from_s": round(self.start, 1), "to_s": round(self.end, 1), "orders_per_s": round(self.orders_per_s, 1),
                "mesh_cpu_ms_per_order": round(self.mesh_ms_per_order, 2), "other_cores": round(self.other_cores, 2)}


@dataclass
class Timeline:
    samples: list[CpuSample] = field(default_factory=list)

    def _nearest(self, at: float) -> CpuSample:
        return min(self.samples, key=lambda s: abs(s.time - at))

    def slice(self, run: Run[Any], start: float, end: float) -> Slice:
        """Slice [start, end) of ``run``'s measured window (seconds after it began)."""
        before, after = self._nearest(run.measure_from + start), self._nearest(run.measure_from + end)
        wall = after.time - before.time
        mesh = sum(used(before, after).values())
        others = after.machine - before.machine - (after.own - before.own) - mesh
        rate = run.rate(start, end)
        orders = rate * (end - start)
        return Slice(start, end, rate, mesh * 1000 / orders if orders else float("nan"),
                     max(0.0, others) / wall if wall > 0 else float("nan"))


@contextlib.asynccontextmanager
async def sampling(clock: CpuClock) -> AsyncIterator[Timeline]:
    """Samples ``clock`` every second while the block runs."""
    timeline = Timeline([clock.sample()])

    async def sample() -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            timeline.samples.append(clock.sample())

    task = asyncio.create_task(sample())
    try:
        yield timeline
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        timeline.samples.append(clock.sample())
