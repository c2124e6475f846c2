"""Shared body of every service's Alembic env.py: migrations always run on the
connection (and tenant schema) handed over by services.runtime.migrations."""

from __future__ import annotations

from alembic import context


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    schema = config.attributes.get("schema")
    if connection is None or schema is None:
        raise SystemExit("run migrations through the service (services.runtime.migrations), not the alembic CLI")
    context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
