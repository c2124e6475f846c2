"""CPU time of the mesh's processes, from /proc (Linux): utime + stime of a process and of
every descendant alive, plus cutime + cstime (children that exited and were reaped), so
PostgreSQL counts the postmaster, every backend and background worker, and the backends
that ended in between. Differences of two samples are the CPU used in between."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Stat:
    ppid: int
    own: float  # utime + stime, seconds (all threads)
    reaped: float  # cutime + cstime: children that exited and were waited for


def _stat(pid: int) -> _Stat | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3 of proc(5)): ppid 4, utime 14, stime 15, cutime 16, cstime 17
    return _Stat(int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS,
                 (int(fields[13]) + int(fields[14])) / _TICKS)


def _all_stats() -> dict[int, _Stat]:
    stats: dict[int, _Stat] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def _tree(root: int, stats: Mapping[int, _Stat]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, todo = [], [root] if root in stats else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def group_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its descendants alive, by pid (the root's entry
    includes what its reaped children used): the per-call micro benchmarks (bench/charge.py,
    getcart.py, reserve_cpu.py) subtract two of these."""
    stats = _all_stats()
    root = stats.get(pid)
    return {p: stats[p].own + (stats[p].reaped if p == pid else 0.0) for p in _tree(pid, stats)} if root else {}


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have been busy (not idle, not waiting on I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def own_seconds() -> float:
    """CPU seconds of this process (the benchmark: the load generator), all its threads."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuSample:
    time: float  # monotonic
    seconds: dict[str, float]  # CPU seconds used so far, by process (group) name
    machine: float = 0.0  # machine_busy_seconds()
    own: float = 0.0  # own_seconds()


class CpuClock:
    """Samples the CPU seconds of named process trees. ``exclude``: pids left out (e.g. the
    benchmark's own PostgreSQL backends; keep them alive until the last sample)."""

    def __init__(self, roots: Mapping[str, int | None], exclude: Collection[int] = ()) -> None:
        self.roots = {name: pid for name, pid in roots.items() if pid is not None}
        self.exclude = set(exclude)

    def sample(self) -> CpuSample:
        stats = _all_stats()
        seconds = {name: sum(stats[p].own + stats[p].reaped for p in _tree(pid, stats) if p not in self.exclude)
                   for name, pid in self.roots.items()}
        return CpuSample(time.monotonic(), seconds, machine_busy_seconds(), own_seconds())


def used(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds each process (tree) used between two samples."""
    return {name: max(0.0, after.seconds[name] - before.seconds.get(name, 0.0)) for name in after.seconds}


class CpuMeter:
    """Cores each named process (tree) used between ``start()`` and ``stop()``."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._clock = CpuClock(pids)
        self._before: CpuSample | None = None
        self.seconds: dict[str, float] = {}

    def start(self) -> None:
        self._before = self._clock.sample()

    def stop(self) -> dict[str, float]:
        if self._before is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        after = self._clock.sample()
        wall = after.time - self._before.time
        self.seconds = used(self._before, after)
        return {name: round(s / wall, 2) if wall > 0 else 0.0 for name, s in self.seconds.items()}
