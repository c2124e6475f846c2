"""The bare baseline of the GetProduct benchmark: a minimal grpc.aio + asyncpg server
on uvloop that does the catalog's read and nothing else (no auth, no cache, no
interceptor, no health): one row of ``t_<tenant>.products`` by id through a prepared
statement (asyncpg prepares and caches it per connection), into the same
GetProductResponse the catalog service returns.

    python -m bench.bare_server --dsn postgresql://.../commerce_catalog --schema t_bench --port 50199
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
import uvloop
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from commerce.common.v1 import money_pb2

COLUMNS = ("product_id, sku, title, description, category, attributes, price_currency, price_minor, status, "
           "create_time, update_time")
SCHEMA = re.compile(r"^t_[a-z0-9_]{1,60}$")
STATUS = {name.removeprefix("PRODUCT_STATUS_"): number for name, number in pb.ProductStatus.items()}


def select_product(schema: str) -> str:
    if not SCHEMA.match(schema):
        raise ValueError(f"not a tenant schema name: {schema!r}")
    return f"SELECT {COLUMNS} FROM {schema}.products WHERE product_id = $1"


def product_message(row: asyncpg.Record) -> pb.Product:
    message = pb.Product(
        name=f"products/{row['product_id']}", product_id=row["product_id"], sku=row["sku"], title=row["title"],
        description=row["description"], category=row["category"], attributes=json.loads(row["attributes"]),
        price=money_pb2.Money(currency_code=row["price_currency"], amount_minor=row["price_minor"]),
        status=STATUS[row["status"]],  # type: ignore[arg-type]
    )
    message.create_time.FromDatetime(row["create_time"])
    message.update_time.FromDatetime(row["update_time"])
    return message


class BareCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, pool: asyncpg.Pool, query: str) -> None:
        self._pool = pool
        self._query = query

    async def GetProduct(self, request: pb.GetProductRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetProductResponse:
        row = await self._pool.fetchrow(self._query, request.product_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "product not found")
        return pb.GetProductResponse(product=product_message(row))


async def serve(dsn: str, schema: str, host: str, port: int, pool_size: int) -> None:
    query = select_product(schema)
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    server = grpc.aio.server()
    # GetProduct only: the other methods answer UNIMPLEMENTED (hence abstract for the typed stubs).
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(BareCatalog(pool, query), server)  # type: ignore[abstract]
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"cannot listen on {host}:{port}")
    await server.start()
    print(f"bare GetProduct server on {host}:{port}, {schema}.products, pool {pool_size}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)
    await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="the catalog database, e.g. postgresql://.../commerce_catalog")
    parser.add_argument("--schema", required=True, help="the tenant schema, e.g. t_bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=10, help="as the catalog's db_pool_size (default 10)")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.dsn, args.schema, args.host, args.port, args.pool_size))


if __name__ == "__main__":
    main()
