"""CPU time of running processes, from /proc (Linux), to show who used the 2 cores."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (all threads)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def group_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its direct children (PostgreSQL: the postmaster
    and its backends), by pid."""
    return {p: _cpu_seconds(p) for p in (pid, *_children(pid))}


class CpuMeter:
    """Cores each named process (group) used between ``start()`` and ``stop()``.
    A child that ended in between is missed; one that started is counted whole."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._before: dict[str, dict[int, float]] = {}
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._before = {name: group_cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._started
        used: dict[str, float] = {}
        for name, pid in self._pids.items():
            before = self._before.get(name, {})
            seconds = sum(cpu - before.get(p, 0.0) for p, cpu in group_cpu_seconds(pid).items())
            used[name] = round(max(seconds, 0.0) / wall, 2) if wall > 0 else 0.0
        return used
