"""Channels for calls between the mesh's services, balanced over every replica.

A target ``host:port`` becomes ``dns:///host:port``: gRPC resolves the name itself and, with
``round_robin``, holds a connection to every address it answers (in Kubernetes the headless
Service: one address per ready pod) and spreads calls over them. ``pick_first`` (gRPC's
default) would send a process's every call to one pod, and pods the HPA adds would get none.

- new pods: gRPC resolves the name again when a connection closes; servers end each
  connection after ``MAX_CONNECTION_AGE_MS`` (server.SERVER_OPTIONS, streams left to finish),
  so every client looks the name up again at least that often;
- pods going away: a server that stops sends GOAWAY, the balancer stops picking that address
  at once, and calls that had not reached it are retried on another one by gRPC (transparent
  retry): a graceful stop loses no call;
- keepalive pings find a dead peer (a node that vanished) within ``keepalive_time`` +
  ``keepalive_timeout`` instead of a TCP timeout; reconnection backs off from 0.5 s to 5 s.

A full gRPC target (``dns://server/name:port``, ``ipv4:...``) is taken as it is.
"""

from __future__ import annotations

import json

import grpc

from services.runtime import telemetry

# A replica that stops may cancel a call it had taken in just as it began its shutdown (before
# its GOAWAY reached the caller): such a call is tried again on another replica, twice at most,
# after 50-200 ms. Every call between the mesh's services may be repeated (reads, or writes
# carrying a request_id), and a caller's deadline still bounds it. UNAVAILABLE is not retried
# here: a call refused by a stopping server is retried by gRPC transparently, and a peer that is
# down is the caller's to handle (the order saga retries its steps with back-off itself).
RETRY_POLICY = {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s", "backoffMultiplier": 2,
                "retryableStatusCodes": ["CANCELLED"]}
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}],
                             "methodConfig": [{"name": [{}], "retryPolicy": RETRY_POLICY}]})
# Keepalive pings stay above the servers' min_ping_interval (server.SERVER_OPTIONS: 10 s).
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.dns_min_time_between_resolutions_ms", 1_000),
    ("grpc.enable_retries", 1),
]


SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")


def target_of(address: str) -> str:
    return address if address.startswith(SCHEMES) else f"dns:///{address}"


def internal_channel(address: str) -> grpc.aio.Channel:
    """A balanced, kept-alive channel to ``address`` (``host:port`` or a gRPC target), traced when
    tracing is on (services/runtime/telemetry.py)."""
    return grpc.aio.insecure_channel(target_of(address), options=CHANNEL_OPTIONS,
                                     interceptors=telemetry.client_interceptors())
