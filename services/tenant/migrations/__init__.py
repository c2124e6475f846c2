"""Alembic script folders of the tenant service: ``platform`` (the one schema of
platform-wide tables) and ``tenant`` (applied to every tenant's ``t_<id>`` schema)."""

from pathlib import Path

PLATFORM = Path(__file__).parent / "platform"
TENANT = Path(__file__).parent / "tenant"
