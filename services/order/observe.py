"""What the saga tells operators: a span per step (with the order id and its outcome) and
the step's latency, and every saga's end by status and reason (Prometheus).

    with SagaStep("reserve", order_id) as step:
        ...
        step.outcome = "held"

Tenant is a label of the outcomes only (a tenant that checks out has about ten series:
status x reason); step latency has none (its series would multiply by step x outcome).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from types import TracebackType

from opentelemetry.trace import Span
from prometheus_client import Counter, Gauge, Histogram

from services.runtime import telemetry

STEP_SECONDS = Histogram(
    "commerce_saga_step_seconds", "Time of a saga step (its remote calls and retries, or its write), by outcome",
    ["step", "outcome"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
OUTCOMES = Counter("commerce_saga_outcomes_total", "Sagas that ended, by tenant, the order's status and failure reason",
                   ["tenant", "status", "reason"])

# The recovery worker's view, every pass: a saga that stays unfinished is stuck (a peer down,
# a bug); one it took over had lost its runner (a process died, a step stalled).
OLDEST_UNFINISHED = Gauge("commerce_saga_oldest_unfinished_seconds",
                          "Since the oldest stalled saga last moved, over every tenant "
                          "(0: none unfinished past the idle time)")
RESUMED = Counter("commerce_sagas_resumed_total", "Unfinished sagas the recovery worker took over and resumed")


def ended(tenant_id: str, status: str, reason: str) -> None:
    OUTCOMES.labels(tenant_id, status.lower(), reason or "none").inc()


class SagaStep:
    """A step of an order's saga: a span ``saga <step>`` and a latency sample. ``outcome``
    is what became of it ("error" when it raised, "ok" when nobody said)."""

    __slots__ = ("_scope", "_span", "_started", "detail", "name", "order_id", "outcome")

    def __init__(self, name: str, order_id: str) -> None:
        self.name = name
        self.order_id = order_id
        self.outcome = ""
        self.detail = ""
        self._started = 0.0
        self._scope: AbstractContextManager[Span] | None = None
        self._span: Span | None = None

    def __enter__(self) -> SagaStep:
        self._started = time.perf_counter()
        self._scope = telemetry.span(f"saga {self.name}",
                                     {telemetry.ORDER: self.order_id, "commerce.saga.step": self.name})
        self._span = self._scope.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        outcome = self.outcome or ("error" if kind is not None else "ok")
        STEP_SECONDS.labels(self.name, outcome).observe(time.perf_counter() - self._started)
        assert self._scope is not None and self._span is not None
        self._span.set_attribute(telemetry.OUTCOME, outcome)
        if self.detail:
            self._span.set_attribute("commerce.reason", self.detail)
        return self._scope.__exit__(kind, error, tb)
