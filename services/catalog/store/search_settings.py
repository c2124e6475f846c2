"""The tenant's search settings (``search_settings``, one row) and re-indexing.

Changing the language rewrites no product at once: it empties the vocabulary (its
words were stems of the old language), sets ``reindex_after`` to '' and notifies the
caches. ``reindex_batch`` then gives the next products, in product_id order, their
vector in the new language (``SET title = title`` fires the row trigger; the
statement trigger adds their words) and moves ``reindex_after`` on, under the
settings row's lock, so replicas working on one tenant take turns and never redo a
batch; it clears ``reindex_after`` after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.catalog.store.products import CHANNEL
from services.runtime.sql import Session, Sql

GET = Sql("SELECT language::text AS language, reindex_after IS NOT NULL AS reindexing, update_time "
          "FROM {schema}.search_settings")
LANGUAGES = Sql("SELECT cfgname::text AS name FROM pg_ts_config WHERE cfgnamespace = 'pg_catalog'::regnamespace "
                "ORDER BY 1")
SET = Sql("""
WITH changed AS (
    UPDATE {schema}.search_settings SET language = $1::regconfig, reindex_after = '', update_time = now()
    WHERE language <> $1::regconfig RETURNING 1),
forgotten AS (DELETE FROM {schema}.search_terms WHERE EXISTS (SELECT FROM changed))
SELECT EXISTS (SELECT FROM changed) AS changed
""")
NOTIFY = Sql("SELECT pg_notify($1, $2)")
REINDEX_BATCH = Sql("""
WITH settings AS MATERIALIZED (
    SELECT reindex_after FROM {schema}.search_settings WHERE reindex_after IS NOT NULL FOR UPDATE),
batch AS (
    SELECT p.product_id FROM {schema}.products p, settings s WHERE p.product_id > s.reindex_after
    ORDER BY p.product_id LIMIT $1),
touched AS (
    UPDATE {schema}.products p SET title = p.title FROM batch b WHERE p.product_id = b.product_id
    RETURNING p.product_id)
UPDATE {schema}.search_settings
SET reindex_after = CASE WHEN (SELECT count(*) FROM touched) < $1 THEN NULL
                         ELSE (SELECT max(product_id) FROM touched) END
WHERE EXISTS (SELECT FROM settings)
RETURNING reindex_after IS NOT NULL AS more
""")


@dataclass(frozen=True)
class Settings:
    language: str
    reindexing: bool
    update_time: datetime


async def get(session: Session) -> Settings:
    row = await session.fetchrow(GET)
    assert row is not None, "migration c0004 inserts the settings row"
    return Settings(row["language"], row["reindexing"], row["update_time"])


async def languages(session: Session) -> list[str]:
    return [r["name"] for r in await session.fetch(LANGUAGES)]


async def set_language(session: Session, language: str) -> bool:
    """In the session's transaction: True when the language changed (re-indexing begins)."""
    changed = bool(await session.fetchval(SET, language))
    if changed:
        await session.execute(NOTIFY, CHANNEL, f"{session.schema}:")
    return changed


async def reindex_batch(session: Session, size: int) -> bool:
    """Indexes the next ``size`` products again (one transaction); True while more remain."""
    more = await session.fetchval(REINDEX_BATCH, size)
    if more is not None:  # a batch was indexed: searches may find other products now
        await session.execute(NOTIFY, CHANNEL, f"{session.schema}:")
    return bool(more)
