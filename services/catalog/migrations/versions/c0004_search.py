"""Search: a weighted tsvector per product kept by the database, its indexes, the
tenant's search language, and the vocabulary that typo and prefix matching use.

- ``products.search``: title (weight A), sku (B), category and attribute values (C),
  description (D), in the tenant's language; a row trigger computes it on every
  insert and on every update of those columns, so no write path can forget it.
- ``products.attribute_keys``: the attributes' keys, kept by the same trigger, for
  ``attributes:key`` (has the key). An array's GIN index, unlike jsonb's, comes with
  statistics of how common each element is: the planner knows that a key most products
  have is not worth the index (with jsonb ``?`` it assumed 1 % and read posting lists of
  hundreds of thousands of rows).
- ``search_settings``: one row, the tenant's text-search configuration
  (``language``) and, while products are being re-indexed after a change of
  language, how far that got (``reindex_after``).
- ``search_terms``: every distinct word (lexeme) of titles, categories and attribute
  values, added by a statement trigger after each insert or update of products; a
  word of a query that is not in it is matched through its closest terms (pg_trgm).
- pg_trgm lives in the database's ``extensions`` schema (extensions are per
  database, not per schema): created there once, or moved there, under a lock every
  tenant's migration takes, and always named with its schema (``extensions.%``).

Nothing here touches ``stock``: the checkout's statements are unchanged.

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None

EXTENSIONS = "extensions"
DEFAULT_LANGUAGE = "english"


def _ensure_pg_trgm() -> None:
    bind = op.get_bind()
    # Tenants of one database migrate concurrently (each under its own schema lock): one at a time here.
    bind.execute(text("SELECT pg_advisory_xact_lock(hashtext('commerce:extensions'))"))
    bind.execute(text(f"CREATE SCHEMA IF NOT EXISTS {EXTENSIONS}"))
    where = bind.scalar(text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                             "WHERE e.extname = 'pg_trgm'"))
    if where is None:
        bind.execute(text(f"CREATE EXTENSION pg_trgm WITH SCHEMA {EXTENSIONS}"))
    elif where != EXTENSIONS:  # installed elsewhere by hand: this database is the catalog's own
        bind.execute(text(f"ALTER EXTENSION pg_trgm SET SCHEMA {EXTENSIONS}"))


def upgrade() -> None:
    _ensure_pg_trgm()
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    assert schema and schema.startswith("t_"), schema
    s = f'"{schema}"'
    op.execute(f"""
CREATE TABLE {s}.search_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    language regconfig NOT NULL DEFAULT '{DEFAULT_LANGUAGE}',
    reindex_after text COLLATE "C",
    update_time timestamptz NOT NULL DEFAULT now())""")
    op.execute(f"INSERT INTO {s}.search_settings DEFAULT VALUES")
    op.execute(f"CREATE TABLE {s}.search_terms (term text COLLATE \"C\" PRIMARY KEY)")
    op.execute(f"CREATE INDEX search_terms_trgm ON {s}.search_terms USING gin (term {EXTENSIONS}.gin_trgm_ops)")
    op.execute(f"ALTER TABLE {s}.products ADD COLUMN search tsvector NOT NULL DEFAULT ''::tsvector")
    op.execute(f"ALTER TABLE {s}.products ADD COLUMN attribute_keys text[] NOT NULL DEFAULT '{{}}'")
    # The tenant's schema is written into the functions: they run on whatever search_path the caller has.
    op.execute(f"""
CREATE FUNCTION {s}.products_search() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cfg regconfig := (SELECT language FROM {s}.search_settings);
BEGIN
    NEW.search := setweight(to_tsvector(cfg, NEW.title), 'A')
               || setweight(to_tsvector(cfg, NEW.sku), 'B')
               || setweight(to_tsvector(cfg, NEW.category) || jsonb_to_tsvector(cfg, NEW.attributes, '["string"]'), 'C')
               || setweight(to_tsvector(cfg, NEW.description), 'D');
    NEW.attribute_keys := ARRAY(SELECT jsonb_object_keys(NEW.attributes) ORDER BY 1);
    RETURN NEW;
END $$""")
    op.execute(f"""
CREATE TRIGGER products_search BEFORE INSERT OR UPDATE OF title, sku, category, attributes, description
ON {s}.products FOR EACH ROW EXECUTE FUNCTION {s}.products_search()""")
    # Words of titles, categories and attribute values (weights A and C), in sorted order so that
    # concurrent writers adding the same new words queue instead of deadlocking.
    op.execute(f"""
CREATE FUNCTION {s}.products_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.search_terms (term)
    SELECT DISTINCT t.term FROM changed, unnest(tsvector_to_array(ts_filter(changed.search, '{{a,c}}'))) AS t(term)
    WHERE length(t.term) BETWEEN 3 AND 40 ORDER BY 1
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$""")
    for event in ("INSERT", "UPDATE"):
        op.execute(f"""
CREATE TRIGGER products_terms_{event.lower()} AFTER {event} ON {s}.products
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {s}.products_terms()""")
    # Existing products get their vector (and their words) now.
    op.execute(f"UPDATE {s}.products SET title = title")
    op.execute(f"CREATE INDEX products_search ON {s}.products USING gin (search)")
    # Title matches rank first: an index of its own gives the planner their real frequency.
    op.execute(f"CREATE INDEX products_search_title ON {s}.products USING gin (ts_filter(search, '{{a}}'))")
    # attributes.color = "red" (containment: one entry per key and value) and attributes:color (the key).
    op.execute(f"CREATE INDEX products_attribute_values ON {s}.products USING gin (attributes jsonb_path_ops)")
    op.execute(f"CREATE INDEX products_attribute_keys ON {s}.products USING gin (attribute_keys)")
    # category = "shoes" AND price < 5000 finds its matches in the index alone (and their product_id,
    # the default order), instead of visiting every product of the category to test its price.
    op.execute(f"CREATE INDEX products_category_price ON {s}.products (category, price_minor, product_id)")
    op.execute(f"CREATE INDEX products_create_time ON {s}.products (create_time, product_id)")
    op.execute(f"CREATE INDEX products_title ON {s}.products (lower(title), product_id)")


def downgrade() -> None:
    schema = op.get_bind().scalar(text("SELECT current_schema()"))
    s = f'"{schema}"'
    for index in ("products_search", "products_search_title", "products_attribute_values", "products_attribute_keys",
                  "products_category_price", "products_create_time", "products_title"):
        op.execute(f"DROP INDEX {s}.{index}")
    for trigger in ("products_search", "products_terms_insert", "products_terms_update"):
        op.execute(f"DROP TRIGGER {trigger} ON {s}.products")
    op.execute(f"DROP FUNCTION {s}.products_terms()")
    op.execute(f"DROP FUNCTION {s}.products_search()")
    op.execute(f"ALTER TABLE {s}.products DROP COLUMN search")
    op.execute(f"ALTER TABLE {s}.products DROP COLUMN attribute_keys")
    op.execute(f"DROP TABLE {s}.search_terms")
    op.execute(f"DROP TABLE {s}.search_settings")
