"""How many PostgreSQL connections a process of each service may hold: the connection budget.

Through ``DATABASE_URL`` (PgBouncer in a deployment):
- the request pool (asyncpg): ``Settings.pool_size_of(service)``;
- the SQLAlchemy pool of cold paths and migrations: ``cold_pool_size`` + as many overflowing;
- health's own probe connection: 1;
- payment only: the sandbox provider's own small pool (it plays a remote provider), sized alike.

Through ``DATABASE_LISTEN_URL`` (PostgreSQL itself: LISTEN needs a session): the catalog's
cache invalidation listener and the order service's WatchOrder feed, one each.

``tests/deploy/test_k8s_budget.py`` multiplies these by each workload's most replicas (HPA
``maxReplicas``) and checks the sums against PgBouncer's ``max_client_conn`` and PostgreSQL's
``max_connections``; ``tests/catalog/test_connection_budget.py`` checks a real catalog process
under load holds no more than its figure.
"""

from __future__ import annotations

from services.runtime.db import cold_pool_size
from services.runtime.settings import Settings

# The payment sandbox provider's pool (services/payment/app.py).
SANDBOX_POOL_SIZE = 5
HEALTH_PROBE_CONNECTIONS = 1
# Processes that hold LISTEN connections, and how many.
LISTENERS = {"catalog": 1, "order": 1}
# Processes with a database of their own (meshinfo and the mail sink have none).
DATABASE_SERVICES = ("tenant", "catalog", "cart", "order", "payment", "notifications")


def _pool(size: int) -> int:
    return size + 2 * cold_pool_size(size)


def pooled_connections(settings: Settings, service: str) -> int:
    """Most connections one process of ``service`` opens through DATABASE_URL."""
    total = _pool(settings.pool_size_of(service)) + HEALTH_PROBE_CONNECTIONS
    if service == "payment":
        total += _pool(SANDBOX_POOL_SIZE)
    return total


def listen_connections(service: str) -> int:
    """Connections one process of ``service`` opens through DATABASE_LISTEN_URL."""
    return LISTENERS.get(service, 0)
