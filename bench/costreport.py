"""Text tables of a ``Cost``: CPU by process, RPCs by method, transactions and statements by
database, and the statements run most often, each per confirmed order."""

from __future__ import annotations

import re
from collections import Counter

from bench.cost import BACKGROUND_METHODS, Cost

# The mesh's processes in the order a reader looks for them; any other comes after.
PROCESS_ORDER = ("tenant", "catalog", "cart", "order", "payment", "notifications", "meshinfo", "smtp-sink",
                 "nats", "envoy", "postgres")


def _rows(head: str, rows: list[str]) -> str:
    return "\n".join([head, "-" * len(head), *rows])


def cpu_table(cost: Cost) -> str:
    names = sorted(cost.cpu_seconds, key=lambda n: (PROCESS_ORDER.index(n) if n in PROCESS_ORDER else 99, n))
    head = f"{'process':<14} {'CPU s':>8} {'cores':>6} {'ms/order':>9}"
    rows = [f"{name:<14} {cost.cpu_seconds[name]:>8.2f} {cost.cpu_seconds[name] / cost.seconds:>6.2f} "
            f"{cost.per_order(cost.cpu_seconds[name] * 1000):>9.2f}" for name in names]
    total = sum(cost.cpu_seconds.values())
    rows += ["-" * len(head), f"{'sum (mesh)':<14} {total:>8.2f} {total / cost.seconds:>6.2f} "
             f"{cost.cpu_ms_per_order:>9.2f}"]
    return _rows(head, rows)


def machine_line(cost: Cost) -> str:
    s, mesh = cost.seconds, sum(cost.cpu_seconds.values())
    line = (f"machine: {cost.machine_seconds / s:.2f} cores busy on average: mesh {mesh / s:.2f}, "
            f"load generator {cost.generator_seconds / s:.2f}, other processes {cost.other_seconds / s:.2f}")
    if cost.other_seconds / s > 0.2:
        line += "\n  (other work shared the machine: rates and latencies are lower than the mesh alone would give)"
    return line


def rpc_table(cost: Cost) -> str:
    head = f"{'server':<14} {'method':<62} {'calls':>7} {'per order':>9}"
    rows = []
    shown = sorted(cost.rpcs.items(), key=lambda item: (item[0][1].startswith(BACKGROUND_METHODS), -item[1]))
    for (process, method), n in shown:
        if n:
            rows.append(f"{process:<14} {method[-62:]:<62} {n:>7} {cost.per_order(n):>9.2f}")
    rows += ["-" * len(head), f"{'total, health and reflection left out':<77} {cost.shopper_rpcs:>7} "
             f"{cost.per_order(cost.shopper_rpcs):>9.2f}"]
    if cost.rpc_errors:
        rows.append(f"({cost.rpc_errors} of them answered with an error status)")
    return _rows(head, rows)


def database_table(cost: Cost) -> str:
    databases = sorted(set(cost.transactions) | {s.database for s in cost.statements})
    work: Counter[str] = Counter()
    control: Counter[str] = Counter()
    for s in cost.statements:
        (control if s.control else work)[s.database] += s.calls
    head = (f"{'database':<24} {'transactions':>12} {'/order':>7}   {'statements':>10} {'/order':>7}   "
            f"{'+BEGIN/COMMIT':>13} {'/order':>7}   {'connections opened':>18}")
    rows = []
    for db in databases:
        t, w, c = cost.transactions.get(db, 0), work[db], control[db]
        rows.append(f"{db:<24} {t:>12} {cost.per_order(t):>7.2f}   {w:>10} {cost.per_order(w):>7.2f}   "
                    f"{w + c:>13} {cost.per_order(w + c):>7.2f}   {cost.sessions.get(db, 0):>18}")
    t, w, a = sum(cost.transactions.values()), cost.statement_calls(False), cost.statement_calls()
    rows += ["-" * len(head), f"{'all':<24} {t:>12} {cost.per_order(t):>7.2f}   {w:>10} {cost.per_order(w):>7.2f}   "
             f"{a:>13} {cost.per_order(a):>7.2f}   {sum(cost.sessions.values()):>18}"]
    return _rows(head, rows)


def top_statements(cost: Cost, count: int = 20) -> str:
    head = f"{'/order':>7}  {'database':<22}  statement"
    shown = sorted(cost.statements, key=lambda s: -s.calls)[:count]
    rows = [f"{cost.per_order(s.calls):>7.2f}  {s.database:<22}  {_one_line(s.query)[:110]}" for s in shown]
    return _rows(head, rows)


def _one_line(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()
