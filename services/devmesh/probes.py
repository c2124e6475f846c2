"""Readiness probes the launcher waits on: gRPC health and Envoy's admin API."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def grpc_health(address: str, service: str = "", timeout: float = 1.0) -> str:
    """The health status name ("SERVING", "NOT_SERVING", ...) or the gRPC error code name."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def http_get(url: str, timeout: float = 1.0) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode(errors="replace")
    except OSError:
        return 0, ""


class NotReady(Exception):
    pass


def wait_for(what: str, check: Callable[[], str | None], timeout: float,
             alive: Callable[[], str | None] = lambda: None, interval: float = 0.1) -> None:
    """Polls ``check`` (None = ready, else the current state) until ready.

    ``alive`` returns None while the process behind it runs, else why it stopped.
    Raises NotReady naming what was waited for, the last state and how long.
    """
    deadline = time.monotonic() + timeout
    state: str | None = "not checked"
    while True:
        stopped = alive()
        if stopped is not None:
            raise NotReady(f"{what}: {stopped}")
        state = check()
        if state is None:
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not ready after {timeout:.0f}s (last state: {state})")
        time.sleep(interval)
