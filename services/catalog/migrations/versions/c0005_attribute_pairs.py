"""Attribute filters the planner can estimate: ``products.attribute_pairs``, each attribute
as one ``key<US>value`` text (US: the unit separator, U+001F, which no key or value may
hold), kept by the search trigger, with a GIN index.

``attributes.color = "red"`` was ``attributes @> '{"color": "red"}'``: jsonb containment,
which PostgreSQL estimates from a sample of whole attribute objects. At a million products
it guessed a brand's 1,168 products as 91 and a colour's 49,906 as 31,259, so a page took
the wrong plan first (collect every match, then walk the order, or the other way round) and
often both. An array's statistics count each element (``most_common_elems``): the same
filters are estimated within 10 %.

Expand step (services/runtime/MIGRATIONS.md): the column has a default and the trigger
fills it on every write from now on, whichever release writes; existing products get theirs
from the background re-indexing (``search_settings.reindex_after``, as after a change of
language), not in this transaction. Until that ends, searches keep testing ``attributes``
(store/search.py). The jsonb index stays: the previous release and that fallback use it; a
later contract step may drop it.

Costs, said plainly: adding the column is instant, but the index is built in the migration's
transaction, which holds the products table's lock meanwhile (one scan of the table: the
tenant's product reads and writes wait for it; the runner has no step outside a transaction
for CREATE INDEX CONCURRENTLY). The re-indexing reuses the change-of-language pass: it also
recomputes every search vector and empties the tenant's search cache after every batch
(about 2 minutes at a million products, measured).

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None

def _search_function(s: str, pairs: bool) -> str:
    # the same text as store/search.py's attribute_pair()
    line = ("    NEW.attribute_pairs := ARRAY(SELECT key || E'\\x1f' || value FROM jsonb_each_text(NEW.attributes) "
            "ORDER BY 1);\n") if pairs else ""
    return f"""
CREATE OR REPLACE FUNCTION {s}.products_search() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cfg regconfig := (SELECT language FROM {s}.search_settings);
BEGIN
    NEW.search := setweight(to_tsvector(cfg, NEW.title), 'A')
               || setweight(to_tsvector(cfg, NEW.sku), 'B')
               || setweight(to_tsvector(cfg, NEW.category) || jsonb_to_tsvector(cfg, NEW.attributes, '["string"]'), 'C')
               || setweight(to_tsvector(cfg, NEW.description), 'D');
    NEW.attribute_keys := ARRAY(SELECT jsonb_object_keys(NEW.attributes) ORDER BY 1);
{line}    RETURN NEW;
END $$"""


def upgrade() -> None:
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    assert schema and schema.startswith("t_"), schema
    s = f'"{schema}"'
    op.execute(f"ALTER TABLE {s}.products ADD COLUMN attribute_pairs text[] NOT NULL DEFAULT '{{}}'")
    op.execute(_search_function(s, pairs=True))
    op.execute(f"CREATE INDEX products_attribute_pairs ON {s}.products USING gin (attribute_pairs)")
    # Existing products: re-indexed in the background (the catalog picks it up), searched through
    # ``attributes`` until then.
    op.execute(f"UPDATE {s}.search_settings SET reindex_after = '' WHERE EXISTS (SELECT FROM {s}.products)")


def downgrade() -> None:
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    s = f'"{schema}"'
    op.execute(f"DROP INDEX {s}.products_attribute_pairs")
    op.execute(_search_function(s, pairs=False))
    op.execute(f"ALTER TABLE {s}.products DROP COLUMN attribute_pairs")
