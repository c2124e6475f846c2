"""The whole mesh on one machine: embedded PostgreSQL and NATS, the services, Envoy.

Processes that start child processes while gRPC is loaded (this launcher, the tests,
the benchmarks) must not let gRPC's fork handlers run in the forked child: with them,
the child's poller thread can die with "epoll_wait error: Bad file descriptor" before
exec (grpc/grpc#43055). So fork support is off unless someone asked for it.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
