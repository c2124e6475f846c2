"""Alembic scripts of the notifications worker's per-tenant schema."""

from pathlib import Path

SCRIPTS = Path(__file__).parent
