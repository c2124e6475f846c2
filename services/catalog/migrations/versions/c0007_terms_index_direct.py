"""The vocabulary's trigram index is written directly (``fastupdate = off``).

A GIN index with ``fastupdate`` keeps new entries in a pending list that every search
reads in full until a vacuum merges it. After a large import the vocabulary
(``search_terms``) gains tens of thousands of words at once, and until autovacuum came by,
the trigram index looked costly enough that the planner read the whole vocabulary for
every word a query had that the vocabulary lacks: 15 ms a word at 70,000 words (a query of
two such words took 40 ms end to end), against 0.4 ms with the index written directly.
Words are added rarely after the first import, so writing them into the index at once costs
little (about 13 us a word more, measured).

Expand step (services/runtime/MIGRATIONS.md): a storage parameter of an index, and its
pending list merged now.

Revision ID: c0007
Revises: c0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "c0007"
down_revision = "c0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    index = f'"{schema}".search_terms_trgm'
    op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
    op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    op.execute(f'ALTER INDEX "{schema}".search_terms_trgm SET (fastupdate = on)')
