"""Catalog search at a million products in one tenant, through Envoy (issue "catalog search
shoppers expect"):

1. import: the products of bench/catalog_data.py (made beforehand, not timed), sent with
   ImportProducts, 1,000 per call, IMPORT_STREAMS calls at once, native gRPC through Envoy,
   with their stock. Target: the million in under 5 minutes (>= 5,000 products/s asked of
   the bulk import itself);
2. at rest: waits for autovacuum to vacuum and analyze the products and the search vocabulary,
   as it does on its own after a large import (VACUUM ANALYZE by the benchmark only if it has
   not within STATS_WAIT_S);
3. searches, as a shopper (a guest's token: ACTIVE products only), one scenario after the
   other, REST through Envoy (k6, open loop: RATE
   requests/s started on schedule, latency from the client): text matching nothing, a few,
   or most products; filters; sorts; and facet requests. Every request is distinct (bench/
   catalog_data.py), so none is answered by the catalog's search cache: these are the
   database path. Targets: p50 <= 10 ms and p99 <= 30 ms for a page of 20, facets p99 <= 100 ms;
4. cached: popular requests asked again and again (the search cache answers), for scale;
5. freshness: a product's title is changed, then searched for until the new word finds it
   (the search asked first, so its empty answer was cached): target <= 1 s;
6. export: the whole catalog streamed back (ExportProducts through Envoy), for scale.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]
import grpc
import httpx
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from google.protobuf import field_mask_pb2

from bench import catalog_data, k6
from bench.cpu import CpuClock, used
from bench.harness import OBSERVER, RESULTS, SLOW_PLAN_MS, BenchError, Harness
from bench.view import mesh_processes
from services.devmesh.mesh import ROOT

NAME = "search"
SUMMARY = "ListProducts search/filter/sort/facets at a million products through Envoy, bulk import, freshness"
STEPS = 6 + len(catalog_data.SCENARIOS) + 1  # make, import, statistics, scenarios, cached, freshness, export
SCRIPT = ROOT / "bench" / "k6" / "search.js"
BATCH = 1000
IMPORT_STREAMS = 4
STATS_WAIT_S = 180.0
FRESHNESS_ROUNDS = 20
# requests/s of each scenario: a facet request reads thousands of rows, a page a few dozen
RATES = {"facets": 10}
TARGETS: dict[str, tuple[float | None, float | None]] = {"facets": (None, 100.0), "cached": (None, None)}
DEFAULT_TARGET = (10.0, 30.0)
IMPORT_TARGET_S = 300.0


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10
    catalog_size: int = 1_000_000
    rate: int = 40


@dataclass(frozen=True)
class Imported:
    products: int
    seconds: float
    per_s: float
    call_p50_ms: float
    call_p99_ms: float
    cores: dict[str, float]
    outcomes: dict[str, int]


def _raw(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/commerce.catalog.v1.CatalogService/{method}",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def _import(harness: Harness, batches: list[bytes], products: int) -> Imported:
    clock = CpuClock(mesh_processes(harness))
    before = clock.sample()
    durations: list[float] = []
    outcomes: dict[str, int] = {}
    work = iter(batches)
    started = time.monotonic()
    async with grpc.aio.insecure_channel(harness.mesh.edge_address, options=[
            ("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]) as channel:
        call = _raw(channel, "ImportProducts")

        async def stream() -> None:
            for body in work:
                t0 = time.monotonic()
                reply = catalog_pb2.ImportProductsResponse.FromString(
                    await call(body, metadata=harness.shop.metadata, timeout=120))
                durations.append(time.monotonic() - t0)
                for name in ("created", "updated", "unchanged", "failed"):
                    outcomes[name] = outcomes.get(name, 0) + getattr(reply, f"{name}_count")
                done = sum(outcomes.values())
                if done % 100_000 < BATCH:
                    harness.progress.note(f"  {done:,} products imported, {time.monotonic() - started:.0f}s")

        await asyncio.gather(*(stream() for _ in range(IMPORT_STREAMS)))
    seconds = time.monotonic() - started
    after = clock.sample()
    cores = {name: round(s / seconds, 2) for name, s in used(before, after).items() if s / seconds >= 0.01}
    if outcomes.get("created", 0) != products:
        raise BenchError(f"the import created {outcomes.get('created', 0)} of {products} products: {outcomes}")
    ordered = sorted(durations)
    return Imported(products, round(seconds, 1), round(products / seconds), round(ordered[len(ordered) // 2] * 1000),
                    round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)] * 1000), cores, outcomes)


# The tables every search reads: the products, and the vocabulary that widens unknown words.
AT_REST = ("products", "search_terms")


async def _settled(harness: Harness) -> str:
    """Waits until autovacuum has vacuumed and analyzed the products and the search vocabulary
    after the import, as it does on its own (or does it, after STATS_WAIT_S): the searches are
    measured on tables at rest, not beside their first vacuum."""
    conn = await asyncpg.connect(harness.dsn(harness.database_of("catalog")))
    try:
        query = ("SELECT t.relname, t.n_live_tup, t.n_mod_since_analyze, t.n_ins_since_vacuum, t.last_autoanalyze, "
                 "t.last_autovacuum, EXISTS (SELECT FROM pg_stat_progress_vacuum v WHERE v.relid = t.relid) AS busy "
                 "FROM pg_stat_user_tables t WHERE t.schemaname = $1 AND t.relname = ANY($2::text[])")

        def at_rest(row: asyncpg.Record) -> bool:
            live = max(row["n_live_tup"], 1)
            return bool(row["last_autoanalyze"] and row["last_autovacuum"] and not row["busy"]
                        and row["n_mod_since_analyze"] < 0.1 * live and row["n_ins_since_vacuum"] < 0.2 * live)

        started = time.monotonic()
        while time.monotonic() - started < STATS_WAIT_S:
            rows = await conn.fetch(query, harness.shop.schema, list(AT_REST))
            if len(rows) == len(AT_REST) and all(at_rest(r) for r in rows):
                return (f"{' and '.join(AT_REST)} vacuumed and analyzed by autovacuum "
                        f"({time.monotonic() - started:.0f}s after the import)")
            await asyncio.sleep(2)
        for table in AT_REST:
            await conn.execute(f'VACUUM (ANALYZE) "{harness.shop.schema}".{table}')
        return f"VACUUM (ANALYZE) by the benchmark (autovacuum had not within {STATS_WAIT_S:.0f}s)"
    finally:
        await conn.close()


@dataclass(frozen=True)
class Statement:
    """One kind of statement of the catalog's database during a scenario (pg_stat_statements)."""

    calls: int
    mean_ms: float
    max_ms: float
    query: str  # its first words, normalized


async def _reset_statements(harness: Harness) -> None:
    conn = await asyncpg.connect(harness.dsn("postgres"))
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def _statements(harness: Harness, most: int = 4) -> list[Statement]:
    """The catalog's statements that took the most database time since the last reset."""
    conn = await asyncpg.connect(harness.dsn("postgres"))
    try:
        rows = await conn.fetch(
            "SELECT s.calls, s.mean_exec_time, s.max_exec_time, s.query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid "
            "WHERE d.datname = $1 AND r.rolname <> $2 ORDER BY s.total_exec_time DESC LIMIT $3",
            harness.database_of("catalog"), OBSERVER, most)
    finally:
        await conn.close()
    return [Statement(r["calls"], round(r["mean_exec_time"], 2), round(r["max_exec_time"], 1),
                      " ".join(r["query"].split())[:160]) for r in rows]


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: int
    measured: k6.Measured
    results_avg: float  # products per page
    empty_share: float  # pages with no product
    total_avg: float | None  # totalSize, facet requests
    target: tuple[float | None, float | None]
    wrapped: int
    others: float | None  # cores other work took meanwhile
    statements: list[Statement]  # where the database's time went (warm-up included)

    @property
    def met(self) -> bool | None:
        p50, p99 = self.target
        if p50 is None and p99 is None:
            return None
        return (p50 is None or self.measured.p50_ms <= p50) and (p99 is None or self.measured.p99_ms <= p99)


def _trend(summary: dict[str, Any], name: str) -> dict[str, float]:
    values: dict[str, float] = summary["metrics"].get(f"{name}{{scenario:measure}}", {}).get("values", {})
    return values


def _shopper_token(harness: Harness) -> str:
    """A guest's token: the searches are a shopper's (ACTIVE products only, as customers see them)."""
    with harness.channel("tenant") as channel:
        reply = tenant_pb2_grpc.TenantServiceStub(channel).CreateGuestToken(
            tenant_pb2.CreateGuestTokenRequest(tenant_id=harness.shop.tenant_id), timeout=30)
    return str(reply.access_token)


def _run_scenario(harness: Harness, name: str, paths: list[str], rate: int, options: Options,
                  known: CpuClock, shopper: str) -> Scenario:
    paths_file = harness.workdir / f"search-{name}.json"
    paths_file.write_text(json.dumps(paths))
    load = k6.Load(max(2, min(options.vus, rate)), options.warmup_s, options.duration_s)
    env = {"TARGET": harness.mesh.edge_url, "TOKEN": shopper, "PATHS_FILE": str(paths_file),
           "RATE": str(rate), "OFFSET": str(int(rate * options.warmup_s * 1.2) + 10)}
    asyncio.run(_reset_statements(harness))
    before = known.sample()
    measured = k6.run(SCRIPT, load, env, "http_req_duration", harness.logs_dir, f"search-{name}")
    after = known.sample()
    statements = asyncio.run(_statements(harness))
    summary = json.loads((harness.logs_dir / f"k6-search-{name}-summary.json").read_text())
    results, total = _trend(summary, "results"), _trend(summary, "total")
    wall = after.time - before.time
    others = (after.machine - before.machine - (after.own - before.own) - sum(used(before, after).values())
              - measured.k6_cpu_cores * measured.wall_s)
    wrapped, empty = (int(summary["metrics"].get(f"{metric}{{scenario:measure}}", {}).get("values", {}).get("count", 0))
                      for metric in ("wrapped", "empty"))
    return Scenario(name, rate, measured, round(results.get("avg", 0.0), 1),
                    round(empty / max(measured.requests, 1), 2), round(total["avg"]) if total else None,
                    TARGETS.get(name, DEFAULT_TARGET), wrapped,
                    round(max(0.0, others) / wall, 2) if wall > 0 else None, statements)


def _fresh(harness: Harness, product_id: str, rounds: int, shopper: str) -> list[float]:
    """Seconds from UpdateProduct's answer (by the seller) until a shopper's search for the new
    title word finds it."""
    seconds = []
    headers = {"authorization": f"Bearer {shopper}"}
    with grpc.insecure_channel(harness.mesh.edge_address) as channel, \
            httpx.Client(base_url=harness.mesh.edge_url, headers=headers, timeout=10) as rest:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        for _ in range(rounds):
            word = f"w{uuid.uuid4().hex[:12]}"  # unlike any other word (else typo matching finds it)
            path = "/v1/products?" + urlencode({"query": word, "pageSize": 1})
            if rest.get(path).json().get("products"):  # asked first: its empty answer is cached
                raise BenchError(f"{word!r} found before the update")
            catalog.UpdateProduct(catalog_pb2.UpdateProductRequest(
                product=catalog_pb2.Product(product_id=product_id, title=f"Fresh {word}"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=harness.shop.metadata, timeout=10)
            changed = time.monotonic()
            while not rest.get(path).json().get("products"):
                if time.monotonic() - changed > 10:
                    raise BenchError(f"the updated title was not found by a search within 10 s ({word!r})")
                time.sleep(0.002)
            seconds.append(time.monotonic() - changed)
    return seconds


async def _export(harness: Harness) -> tuple[int, float]:
    started, count = time.monotonic(), 0
    async with grpc.aio.insecure_channel(harness.mesh.edge_address, options=[
            ("grpc.max_receive_message_length", 16 << 20)]) as channel:
        stream = channel.unary_stream("/commerce.catalog.v1.CatalogService/ExportProducts",
                                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
        request = catalog_pb2.ExportProductsRequest(batch_size=1000).SerializeToString()
        async for raw in stream(request, metadata=harness.shop.metadata, timeout=1800):
            count += len(catalog_pb2.ExportProductsResponse.FromString(raw).entries)
    return count, time.monotonic() - started


def _first_product(harness: Harness) -> str:
    with grpc.insecure_channel(harness.mesh.edge_address) as channel:
        reply = catalog_pb2_grpc.CatalogServiceStub(channel).ListProducts(
            catalog_pb2.ListProductsRequest(page_size=1, filter="status = ACTIVE"), metadata=harness.shop.metadata,
            timeout=10)
    return str(reply.products[0].product_id)


def _postgres_log(harness: Harness) -> Path:
    return harness.logs_dir / "postgres.log"


def _keep_slow_plans(harness: Harness, since: int) -> str:
    """Copies what auto_explain logged (plans of slow statements) after byte ``since`` of the
    mesh's PostgreSQL log, which goes with the mesh, to bench/results/search-slow-plans.log."""
    log = _postgres_log(harness)
    kept = RESULTS / "search-slow-plans.log"
    lines = []
    if log.exists():
        with log.open("rb") as file:
            file.seek(since)
            lines = file.read().decode(errors="replace").splitlines()
    plans, inside = [], False
    for line in lines:
        if "duration:" in line and "plan:" in line:
            inside = True
        elif line[:1] not in (" ", "\t") and not line.startswith("Query Text"):
            inside = False
        if inside:
            plans.append(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    kept.write_text("\n".join(plans) + "\n")
    count = sum(1 for line in plans if "plan:" in line)
    return f"{count} in {kept.relative_to(ROOT)}"


def _popular(count: int) -> list[str]:
    """A few popular requests, asked over and over: after the first time the cache answers."""
    base = ["/v1/products?" + urlencode({"query": q, "pageSize": 20}) for q in ("black", "quality", "shirt")]
    base += ["/v1/products?" + urlencode([("filter", 'category = "shoes"'), ("pageSize", 20), ("facets", "category"),
                                          ("facets", "attributes.color")])]
    return [base[i % len(base)] for i in range(count)]


def _table(rows: list[Scenario]) -> str:
    head = (f"{'scenario':<10} {'req/s':>6} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} "
            f"{'found/page':>10} {'empty':>5} {'total':>8}  {'target':<18} {'others':>6}")
    lines = [head, "-" * len(head)]
    for row in rows:
        m = row.measured
        p50, p99 = row.target
        target = " ".join(t for t in (f"p50<={p50:g}" if p50 else "", f"p99<={p99:g}" if p99 else "") if t)
        verdict = "" if row.met is None else (" met" if row.met else " NOT met")
        lines.append(f"{row.name:<10} {row.rate:>6} {m.p50_ms:>7.1f} {m.p90_ms:>7.1f} {m.p99_ms:>7.1f} "
                     f"{m.max_ms:>7.1f} {m.errors:>6} {row.results_avg:>10.1f} {row.empty_share:>5.2f} "
                     f"{'' if row.total_avg is None else f'{row.total_avg:,}':>8}  {target + verdict:<18} "
                     f"{'' if row.others is None else f'{row.others:.2f}':>6}")
    return "\n".join(lines)


def run(harness: Harness, options: Options) -> dict[str, Any]:
    size = options.catalog_size
    batches = harness.step(f"making {size:,} products ({BATCH:,} per ImportProducts call; not timed)",
                           lambda: list(catalog_data.batches(size, BATCH)),
                           lambda made: f"{len(made)} calls, {sum(map(len, made)) / 1e6:.0f} MB")
    imported = harness.step(f"importing {size:,} products through Envoy ({IMPORT_STREAMS} calls at once)",
                            lambda: asyncio.run(_import(harness, batches, size)),
                            lambda i: f"{i.per_s:,} products/s, {i.seconds:.0f}s")
    batches.clear()
    stats = harness.step("waiting for autovacuum to vacuum and analyze the products and the search vocabulary",
                         lambda: asyncio.run(_settled(harness)), lambda note: note)
    known = CpuClock(mesh_processes(harness))
    shopper = _shopper_token(harness)

    def scenario(name: str, paths: list[str], rate: int, label: str) -> Scenario:
        return harness.step(f"k6 {name}: {label}, {rate} req/s, {options.warmup_s}s warm-up + {options.duration_s}s",
                            lambda: _run_scenario(harness, name, paths, rate, options, known, shopper),
                            lambda row: f"p50 {row.measured.p50_ms:.1f} ms, p99 {row.measured.p99_ms:.1f} ms, "
                                        f"{row.measured.errors} errors")

    log = _postgres_log(harness)
    searches_from = log.stat().st_size if log.exists() else 0
    rows: list[Scenario] = []
    for name in catalog_data.SCENARIOS:
        rate = min(RATES.get(name, options.rate), options.rate)
        count = int(rate * (options.warmup_s + options.duration_s) * 1.3) + 50
        rows.append(scenario(name, catalog_data.requests(name, count, size), rate, "every request distinct"))
    cached = scenario("cached", _popular(options.rate * 100), options.rate, "popular requests again and again")
    slow = _keep_slow_plans(harness, searches_from)
    product_id = _first_product(harness)
    fresh = harness.step(f"freshness: {FRESHNESS_ROUNDS} updates, each searched for until found",
                         lambda: _fresh(harness, product_id, FRESHNESS_ROUNDS, shopper),
                         lambda s: f"p50 {statistics.median(s) * 1000:.0f} ms, max {max(s) * 1000:.0f} ms")
    exported, export_s = harness.step("exporting the catalog through Envoy (ExportProducts)",
                                      lambda: asyncio.run(_export(harness)),
                                      lambda e: f"{e[0]:,} products in {e[1]:.0f}s")
    print()
    print(f"import: {imported.products:,} products in {imported.seconds:.0f}s = {imported.per_s:,}/s "
          f"(target: all in < {IMPORT_TARGET_S:.0f}s: {'met' if imported.seconds < IMPORT_TARGET_S else 'NOT met'}); "
          f"{BATCH:,} per call, {IMPORT_STREAMS} at once: call p50 {imported.call_p50_ms} ms, "
          f"p99 {imported.call_p99_ms} ms; cores: {imported.cores}")
    print(f"statistics: {stats}")
    print(_table([*rows, cached]))
    fresh_p50, fresh_max = statistics.median(fresh), max(fresh)
    print(f"freshness: an update is found by search after p50 {fresh_p50 * 1000:.0f} ms, max {fresh_max * 1000:.0f} ms "
          f"(target <= 1 s: {'met' if fresh_max <= 1.0 else 'NOT met'})")
    print(f"export: {exported:,} products in {export_s:.0f}s ({exported / export_s:,.0f}/s)")
    print("\nWhere the catalog database's time went, by scenario (pg_stat_statements, warm-up included): "
          "calls, mean ms, max ms, statement")
    for row in rows:
        print(f"  {row.name}")
        for st in row.statements:
            print(f"    {st.calls:>6} {st.mean_ms:>8.2f} {st.max_ms:>8.1f}  {st.query[:110]}")
    print(f"plans of search statements slower than {SLOW_PLAN_MS} ms (auto_explain): {slow}")
    print(f"\nLatency from k6 (REST through Envoy, open loop, warm-up excluded); found/page: products in each "
          f"page; empty: share\nof empty pages; total: totalSize of facet requests; others: cores other work on this "
          f"{os.cpu_count()}-core machine took\nmeanwhile (the figures move with it).")
    return {"summary": SUMMARY, "options": asdict(options), "import": asdict(imported), "statistics": stats,
            "scenarios": [{**asdict(row), "met": row.met} for row in [*rows, cached]],
            "freshness_ms": {"p50": round(fresh_p50 * 1000, 1), "max": round(fresh_max * 1000, 1),
                             "met": fresh_max <= 1.0},
            "export": {"products": exported, "seconds": round(export_s, 1)}}
