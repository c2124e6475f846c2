"""What confirmed orders cost the whole mesh over a window that covers the load and its tail
(until ``MeshView.drain()``): CPU of every process, RPCs by method, transactions by database
and SQL statements (pg_stat_statements), each per confirmed order."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import metrics
from bench.cpu import CpuSample, used
from bench.observer import Statement
from bench.view import CONFIRMED, Drained, MeshView

STATS_FLUSH_SECONDS = 1.2  # backends report their transaction counts at most once a second
BACKGROUND_METHODS = ("/grpc.health.", "/grpc.reflection.")


@dataclass
class _Mark:
    cpu: CpuSample
    rpcs: Counter[tuple[str, str, str]]
    transactions: dict[str, int]
    sessions: dict[str, int]
    observer_transactions: Counter[str]
    confirmed: int
    last_seq: int


@dataclass(frozen=True)
class Cost:
    orders: int  # confirmed in the window
    seconds: float  # the window, load and drain
    drained: Drained
    cpu_seconds: dict[str, float]  # by process
    rpcs: dict[tuple[str, str], int]  # (process, method) -> calls (every status code)
    rpc_errors: int
    transactions: dict[str, int]  # by database, the observer's own taken off
    statements: list[Statement] = field(default_factory=list)
    sessions: dict[str, int] = field(default_factory=dict)  # connections opened, by database
    first_seq: int = 0  # stream sequences of the window's events
    last_seq: int = 0
    machine_seconds: float = 0.0  # CPU the whole machine was busy
    generator_seconds: float = 0.0  # CPU of the benchmark process (the load generator)

    @property
    def other_seconds(self) -> float:
        """CPU of processes neither of the mesh nor of the benchmark (others sharing the machine)."""
        return max(0.0, self.machine_seconds - sum(self.cpu_seconds.values()) - self.generator_seconds)

    def per_order(self, value: float) -> float:
        return value / self.orders if self.orders else float("nan")

    @property
    def cpu_ms_per_order(self) -> float:
        return self.per_order(sum(self.cpu_seconds.values()) * 1000)

    @property
    def shopper_rpcs(self) -> int:
        return sum(n for (_, method), n in self.rpcs.items() if not method.startswith(BACKGROUND_METHODS))

    def statement_calls(self, control: bool | None = None) -> int:
        """All statements; only transaction control (True); or all but it (False)."""
        return sum(s.calls for s in self.statements if control is None or s.control == control)

    def as_json(self) -> dict[str, Any]:
        return {
            "confirmed_orders": self.orders, "window_s": round(self.seconds, 1),
            "drained": {"complete": self.drained.complete, "seconds": round(self.drained.seconds, 1),
                        "note": self.drained.note},
            "machine_cores_busy": {"all": round(self.machine_seconds / self.seconds, 2),
                                   "mesh": round(sum(self.cpu_seconds.values()) / self.seconds, 2),
                                   "load_generator": round(self.generator_seconds / self.seconds, 2),
                                   "other": round(self.other_seconds / self.seconds, 2)},
            "cpu_ms_per_order": {name: round(self.per_order(s * 1000), 3) for name, s in self.cpu_seconds.items()},
            "cpu_ms_per_order_sum": round(self.cpu_ms_per_order, 2),
            "rpcs_per_order": {f"{p} {m}": round(self.per_order(n), 3) for (p, m), n in sorted(self.rpcs.items())},
            "rpcs_per_order_total": round(self.per_order(self.shopper_rpcs), 2), "rpc_errors": self.rpc_errors,
            "transactions_per_order": {d: round(self.per_order(n), 2) for d, n in sorted(self.transactions.items())},
            "transactions_per_order_total": round(self.per_order(sum(self.transactions.values())), 2),
            "connections_opened": self.sessions,
            "statements_per_order": round(self.per_order(self.statement_calls(False)), 2),
            "statements_per_order_with_transaction_control": round(self.per_order(self.statement_calls()), 2),
            "statements": [{"database": s.database, "per_order": round(self.per_order(s.calls), 3),
                            "query": s.query[:300]}
                           for s in sorted(self.statements, key=lambda s: -s.calls)
                           if self.per_order(s.calls) >= 0.01],
        }


class Window:
    """``await start()``, the load, ``await stop()`` (drains, then reads everything)."""

    def __init__(self, view: MeshView) -> None:
        self.view = view
        self._start: _Mark | None = None

    async def _mark(self, cpu: CpuSample | None = None) -> _Mark:
        view = self.view
        sample = cpu or view.cpu.sample()
        await asyncio.sleep(STATS_FLUSH_SECONDS)
        rpcs = await asyncio.to_thread(metrics.rpc_counts, view.metrics_urls)
        transactions, sessions = await view.observer.database_counters()
        observer = Counter(view.observer.transactions)  # before the queries of this mark that follow
        confirmed = (await view.order_statuses())[CONFIRMED]
        return _Mark(sample, rpcs, transactions, sessions, observer, confirmed, await view.stream.last_seq())

    async def start(self) -> None:
        """Call after a drain: nothing of the work before is left to count."""
        cpu = self.view.cpu.sample()
        await self.view.observer.reset_statements()
        self._start = await self._mark(cpu)

    async def stop(self, limit_s: float = 90.0) -> Cost:
        if self._start is None:
            raise RuntimeError("Window.stop() before start()")
        drained = await self.view.drain(limit_s)
        statements = await self.view.observer.statements()  # before the marks' own queries
        end = await self._mark(self.view.cpu.sample())
        begin = self._start
        rpcs: Counter[tuple[str, str]] = Counter()
        errors = 0
        for (process, method, code), n in (end.rpcs - begin.rpcs).items():
            rpcs[(process, method)] += n
            errors += n if code != "OK" else 0
        observer = end.observer_transactions - begin.observer_transactions
        transactions = {db: n - begin.transactions.get(db, 0) - observer[db] for db, n in end.transactions.items()}
        return Cost(end.confirmed - begin.confirmed, end.cpu.time - begin.cpu.time, drained,
                    used(begin.cpu, end.cpu), dict(rpcs), errors, transactions, statements,
                    {db: n - begin.sessions.get(db, 0) for db, n in end.sessions.items()},
                    begin.last_seq + 1, end.last_seq, end.cpu.machine - begin.cpu.machine,
                    end.cpu.own - begin.cpu.own)
