"""GetProduct, measured three ways in one run, with the same k6 load for each:

- ``grpc``: native gRPC straight to the catalog service (its interceptor verifies the
  token, then the read cache or PostgreSQL);
- ``rest``: GET /v1/products/{id} through Envoy (jwt_authn, JSON transcoding), then the same;
- ``grpc-envoy``: native gRPC through Envoy (jwt_authn, no transcoding): not a target,
  it tells the cost of the extra hop from the cost of the JSON transcoding;
- ``bare``: a minimal grpc.aio + asyncpg server (bench/bare_server.py) reading the same
  row of the same table with a prepared statement: no auth, no cache, no interceptor.

Targets: REST / gRPC, both through Envoy, >= 0.9 (issue "checkout ten times cheaper": the
edge must not make REST the poor relation); our gRPC / bare >= 1.0 (issue 2). Envoy's own
CPU per request is reported: its process CPU over the whole k6 run / every request of it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.common.v1 import money_pb2

from bench import k6
from bench.cpu import CpuClock, CpuMeter, CpuSample, used
from bench.harness import BenchError, Harness
from bench.report import Ratio, Row, table
from bench.view import mesh_processes
from services.devmesh.mesh import ROOT, free_port

NAME = "getproduct"
SUMMARY = "GetProduct: direct gRPC, REST through Envoy, and a bare grpc.aio + asyncpg server"
STEPS = 6  # seed, bare server, four scenarios
SCRIPT = ROOT / "bench" / "k6" / "getproduct.js"
CATEGORIES = ("books", "coffee", "kitchen", "outdoor", "garden")
RATIOS = (Ratio("REST / gRPC, both through Envoy", "rest", "grpc-envoy", 0.9),
          Ratio("ours / bare (gRPC direct)", "grpc", "bare", 1.0),
          Ratio("REST via Envoy / gRPC direct", "rest", "grpc", None),
          Ratio("gRPC via Envoy / gRPC direct", "grpc-envoy", "grpc", None))


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10
    products: int = 100


def _product(n: int, rng: random.Random) -> catalog_pb2.Product:
    category = CATEGORIES[n % len(CATEGORIES)]
    return catalog_pb2.Product(
        sku=f"BENCH-{n:04d}", title=f"Benchmark {category} item {n}", category=category,
        description=f"A {category} product seeded by make bench. " * 3,
        attributes={"colour": rng.choice(("red", "green", "blue")), "size": rng.choice(("S", "M", "L")),
                    "origin": "bench"},
        price=money_pb2.Money(currency_code="USD", amount_minor=rng.randrange(500, 50_000)))


def seed_products(harness: Harness, count: int) -> list[str]:
    rng = random.Random(7)
    with harness.channel("catalog") as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        return [str(catalog.CreateProduct(
            catalog_pb2.CreateProductRequest(product=_product(n, rng), request_id=f"bench-product-{n}"),
            metadata=harness.shop.metadata, timeout=10).product.product_id) for n in range(count)]


def _catalog_dsn(harness: Harness) -> str:
    url = urlsplit(harness.mesh.database_url)
    return url._replace(path="/" + harness.mesh.settings.database_name("catalog")).geturl()


def start_bare_server(harness: Harness, product_id: str) -> tuple[str, int | None]:
    """Starts bench/bare_server.py and waits until it answers GetProduct; returns its address and pid."""
    address = f"127.0.0.1:{free_port()}"
    process = harness.spawn("bare-server", [
        sys.executable, "-m", "bench.bare_server", "--dsn", _catalog_dsn(harness), "--schema", harness.shop.schema,
        "--port", address.rsplit(":", 1)[1], "--pool-size", str(harness.mesh.settings.db_pool_size)])
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(address) as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        while True:
            if not process.alive():
                raise BenchError(f"the bare server exited ({process.exit_code()}):\n{process.log_tail()}")
            try:
                reply = catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product_id), timeout=2)
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise BenchError(f"the bare server did not answer in 30s:\n{process.log_tail()}") from None
                time.sleep(0.2)
                continue
            if reply.product.product_id != product_id:
                raise BenchError(f"the bare server answered {reply.product.product_id!r} for {product_id!r}")
            return address, process.pid


def run(harness: Harness, options: Options) -> dict[str, Any]:
    mesh = harness.mesh
    ids = harness.step(f"seeding {options.products} products (gRPC, catalog)",
                       lambda: seed_products(harness, options.products), lambda ids: f"{len(ids)} products")
    bare_address, bare_pid = harness.step("starting the bare grpc.aio + asyncpg server",
                                          lambda: start_bare_server(harness, ids[0]),
                                          lambda started: f"ready on {started[0]}")
    ids_file = harness.workdir / "product-ids.json"
    ids_file.write_text(json.dumps(ids))
    catalog_pid = mesh.processes["catalog"].pid
    envoy_pid = mesh.envoy.process.pid if mesh.envoy else None
    postgres_pid = mesh.postgres.process.pid if mesh.postgres and mesh.postgres.process else None
    common = {"IDS_FILE": str(ids_file), "TOKEN": harness.shop.seller_token,
              "PROTOSET": str(ROOT / mesh.settings.descriptor_path)}
    scenarios = [
        ("grpc", "gRPC direct -> catalog", {"MODE": "grpc", "TARGET": mesh.address_of("catalog")},
         {"server": catalog_pid, "postgres": postgres_pid}),
        ("rest", "REST -> Envoy -> catalog", {"MODE": "rest", "TARGET": mesh.edge_url},
         {"server": catalog_pid, "envoy": envoy_pid, "postgres": postgres_pid}),
        ("grpc-envoy", "gRPC -> Envoy -> catalog", {"MODE": "grpc", "TARGET": mesh.edge_address},
         {"server": catalog_pid, "envoy": envoy_pid, "postgres": postgres_pid}),
        ("bare", "gRPC direct -> bare server", {"MODE": "grpc", "TARGET": bare_address},
         {"server": bare_pid, "postgres": postgres_pid}),
    ]
    load = k6.Load(options.vus, options.warmup_s, options.duration_s)
    rows: list[Row] = []
    known = CpuClock({**mesh_processes(harness), "bare": bare_pid})  # to tell how busy everything else was
    for name, label, env, pids in scenarios:
        meter = CpuMeter(pids)
        samples: list[CpuSample] = []

        def measure(name: str = name, env: dict[str, str] = env, meter: CpuMeter = meter,
                    samples: list[CpuSample] = samples) -> k6.Measured:
            samples.append(known.sample())
            meter.start()
            latency = "grpc_req_duration" if env["MODE"] == "grpc" else "http_req_duration"
            return k6.run(SCRIPT, load, {**common, **env}, latency, harness.logs_dir, name)

        measured = harness.step(f"k6 {label}: {load.vus} VUs, {load.warmup_s}s warm-up + {load.duration_s}s",
                                measure, lambda m: f"{m.requests_per_s:.0f} req/s, {m.errors} errors")
        cores = meter.stop()
        before, after = samples[0], known.sample()
        wall = after.time - before.time
        others = (after.machine - before.machine - (after.own - before.own) - sum(used(before, after).values())
                  - measured.k6_cpu_cores * measured.wall_s)
        envoy_us = (meter.seconds["envoy"] * 1e6 / measured.all_requests
                    if "envoy" in meter.seconds and measured.all_requests else None)
        rows.append(Row(name, label, measured, {**cores, "k6": round(measured.k6_cpu_cores, 2)}, envoy_us,
                        round(max(0.0, others) / wall, 2) if wall > 0 else None))
    print()
    print(table(rows, RATIOS))
    print(f"\nreq/s: answered without error. srv us/req: CPU time of the server process per request; envoy us/req:\n"
          f"Envoy's process CPU over the whole k6 run (warm-up included) / every request of it. CPU cores:\n"
          f"averaged over each whole k6 run (warm-up included). This machine has {os.cpu_count()} cores, shared by "
          f"k6, Envoy,\nPostgreSQL and the server, so a hop through Envoy takes CPU from the server itself. others: "
          f"cores used meanwhile\nby processes that are neither the mesh, k6 nor this benchmark (other work on the "
          f"machine): a ratio of two\nscenarios that ran beside different amounts of it is a rough one.")
    return {"summary": SUMMARY, "options": asdict(options), "products": len(ids),
            "scenarios": [row.as_json() for row in rows], "ratios": [ratio.as_json(rows) for ratio in RATIOS]}

