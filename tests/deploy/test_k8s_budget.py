"""The connection budget (deploy/README.md): every service pod's connections at the HPA
maxima (services/runtime/budget.py, pool sizes from the ConfigMap) fit in one PgBouncer
replica, and what the PgBouncer replicas and the LISTEN connections open fits PostgreSQL's
max_connections. PgBouncer pools by transaction and keeps prepared statements."""

from __future__ import annotations

import configparser

from services.runtime.budget import DATABASE_SERVICES, listen_connections, pooled_connections
from services.runtime.settings import Settings
from tests.deploy.manifests import configmap_env, find, of_kind, pod_spec, python_module, settings_from

POSTGRES_MAX_CONNECTIONS = 100  # PostgreSQL's default
SUPERUSER_RESERVED = 3  # superuser_reserved_connections' default
MIGRATION_CONNECTIONS = 0  # the migration step, when there is one, is counted by its own test


def _settings() -> Settings:
    return settings_from({**configmap_env(), "DATABASE_URL": "postgresql://x@pgbouncer:6432/postgres"})


def _pgbouncer() -> configparser.SectionProxy:
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string(configmap_env("pgbouncer")["pgbouncer.ini"])
    return ini["pgbouncer"]


def _most_pods(name: str) -> int:
    hpas = [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
    if hpas:
        return int(hpas[0]["spec"]["maxReplicas"])
    return int(find("Deployment", name)["spec"]["replicas"])


def _deployment_of(service: str) -> str:
    for deployment in of_kind("Deployment"):
        if python_module(pod_spec(deployment)["containers"][0]["command"]) == f"services.{service}":
            return str(deployment["metadata"]["name"])
    raise AssertionError(f"no Deployment runs services.{service}")


def test_pgbouncer_pools_by_transaction_and_keeps_prepared_statements() -> None:
    pgbouncer = _pgbouncer()
    assert pgbouncer["pool_mode"] == "transaction"
    assert int(pgbouncer["max_prepared_statements"]) > 0  # asyncpg's statement cache needs it
    image = pod_spec(find("Deployment", "pgbouncer"))["containers"][0]["image"]
    major, minor = (int(part) for part in image.split(":v")[1].split(".")[:2])
    assert (major, minor) >= (1, 21), f"{image}: max_prepared_statements needs PgBouncer 1.21"


def test_every_pool_size_is_set_for_every_service_with_a_database() -> None:
    assert set(_settings().db_pool_sizes) == set(DATABASE_SERVICES)


def test_every_service_pod_at_the_hpa_maxima_fits_one_pgbouncer_replica() -> None:
    settings = _settings()
    clients = sum(_most_pods(_deployment_of(s)) * pooled_connections(settings, s) for s in DATABASE_SERVICES)
    assert clients <= int(_pgbouncer()["max_client_conn"]), clients
    assert clients == 566  # the figure deploy/README.md gives


def test_pgbouncer_and_the_listen_connections_fit_postgres_max_connections() -> None:
    pgbouncer = _pgbouncer()
    per_database = int(pgbouncer["max_db_connections"])
    assert int(pgbouncer["default_pool_size"]) + int(pgbouncer["reserve_pool_size"]) <= per_database
    server = _most_pods("pgbouncer") * per_database * len(DATABASE_SERVICES)
    listen = sum(_most_pods(_deployment_of(s)) * listen_connections(s) for s in DATABASE_SERVICES)
    total = server + listen + MIGRATION_CONNECTIONS + SUPERUSER_RESERVED
    assert total <= POSTGRES_MAX_CONNECTIONS, (server, listen, total)
    assert (server, listen) == (72, 20)  # the figures deploy/README.md gives


def test_only_listeners_get_the_direct_postgres_url() -> None:
    for service in DATABASE_SERVICES:
        env = {e["name"] for e in pod_spec(find("Deployment", _deployment_of(service)))["containers"][0]["env"]}
        assert ("DATABASE_LISTEN_URL" in env) == (listen_connections(service) > 0), service
