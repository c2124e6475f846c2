"""python -m services.devmesh run: the whole mesh on this machine, with a demo tenant;
python -m services.devmesh trace ORDER_ID: where that order's time went (its spans, as a tree).

PostgreSQL and NATS JetStream start from their pip packages with data in .data/
(kept between runs) unless DATABASE_URL / NATS_URL point at existing servers.
Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from services.devmesh.demo import Account, Credentials, SeedError, seed_demo
from services.devmesh.mesh import ROOT, Mesh, MeshError, redact
from services.devmesh.probes import NotReady
from services.devmesh.traces import read_spans, span_tree, traces_of_order
from services.runtime.settings import Settings


class Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def instructions(mesh: Mesh, credentials: Credentials | None) -> str:
    s = mesh.settings
    edge = f"localhost:{s.envoy_port}"
    lines = [
        "",
        "commerce-mesh is running.",
        f"  REST + gRPC (Envoy)   http://{edge}",
        f"  Envoy admin           http://localhost:{s.envoy_admin_port}",
        *(f"  {name:<21} {mesh.address_of(name)} (gRPC, direct)" for name in mesh.services),
        f"  {'meshinfo':<21} {mesh.address_of('meshinfo')} (health and reflection of the mesh)",
        f"  PostgreSQL            {redact(mesh.database_url)}",
        f"  NATS                  {redact(mesh.nats_url)}",
        f"  logs                  {mesh.logs_dir}/<name>.log",
    ]
    if mesh.workers:
        lines.append(f"  {'notifications':<21} {mesh.address_of('notifications')} (worker: order emails, health only)")
    if mesh.smtp_sink:
        lines.append(f"  {'emails':<21} {mesh.mail_dir}/*.eml (SMTP sink on localhost:{s.smtp_port})")
    lines.append(f"  {'dev secrets':<21} {mesh.data_dir / 'secrets'}/ (generated on the first run)")
    if mesh.traces is not None:
        lines.append(f"  {'traces':<21} {mesh.traces_dir}/*.jsonl (OTLP JSON; one order's spans: "
                     "python -m services.devmesh trace ORDER_ID)")
    elif s.otlp_traces_url():
        lines.append(f"  {'traces':<21} exported to {s.otlp_traces_url()}")
    if s.metrics_port_offset:
        lines.append("  metrics               " + ", ".join(
            f"{name} http://localhost:{s.port_of(name) + s.metrics_port_offset}/metrics"
            for name in (*mesh.services, *mesh.workers)))
    lines += ["", "Try it (from this folder):", "",
              "  .venv/bin/grpcurl -plaintext " + edge + " list",
              "  .venv/bin/grpcurl -plaintext " + edge + " describe commerce.catalog.v1.CatalogService",
              "  .venv/bin/grpcurl -plaintext -d '{\"service\": \"commerce.catalog.v1.CatalogService\"}' "
              + edge + " grpc.health.v1.Health/Check"]
    if credentials is not None:
        seller = credentials.seller
        login = json.dumps({"tenantId": seller.tenant_id, "email": seller.email, "password": seller.password})
        lines += [
            "",
            "  # log in as the demo seller; keep the token",
            f"  TOKEN=$(curl -s http://{edge}/v1/auth/login -H 'content-type: application/json' \\",
            f"      -d '{login}' \\",
            "      | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"accessToken\"])')",
            "  # coffee up to $50, two per page (follow nextPageToken with &pageToken=...)",
            "  curl -s -H \"authorization: Bearer $TOKEN\" \\",
            f"      'http://{edge}/v1/products?category=coffee&minPriceMinor=1000&maxPriceMinor=5000&pageSize=2'",
            "  # the same over gRPC, through Envoy",
            "  .venv/bin/grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" \\",
            "      -d '{\"category\": \"coffee\", \"page_size\": 2}' "
            f"{edge} commerce.catalog.v1.CatalogService/ListProducts",
            *(checkout_lines(mesh, credentials.customer) if {"cart", "order"} <= set(mesh.services) else []),
            "",
            f"Demo accounts (passwords in {mesh.data_dir / 'demo-credentials.json'}):",
            f"  platform admin  {credentials.admin.email} (tenant \"{credentials.admin.tenant_id}\")",
            f"  seller          {seller.email} (tenant \"{seller.tenant_id}\")",
            f"  customer        {credentials.customer.email} (tenant \"{credentials.customer.tenant_id}\")",
        ]
    lines += ["", "Press Ctrl-C to stop everything."]
    return "\n".join(lines)


def checkout_lines(mesh: Mesh, customer: Account) -> list[str]:
    """Copy-paste lines placing an order as the demo customer, over REST and over gRPC."""
    edge = f"localhost:{mesh.settings.envoy_port}"
    login = json.dumps({"tenantId": customer.tenant_id, "email": customer.email, "password": customer.password})
    address = ('"shippingAddress": {"recipient": "Demo Customer", "line1": "1 Main St", "city": "Springfield", '
               '"region": "IL", "postalCode": "62701", "countryCode": "US"}')
    address_grpc = address.replace("shippingAddress", "shipping_address").replace("postalCode", "postal_code") \
        .replace("countryCode", "country_code")
    json_of = "python3 -c 'import json,sys; print(json.load(sys.stdin)"
    auth = '-H "authorization: Bearer $CTOKEN"'
    lines = [
        "",
        "  # place an order as the demo customer: log in, add to the cart, check out, read it back",
        f"  CTOKEN=$(curl -s http://{edge}/v1/auth/login -H 'content-type: application/json' \\",
        f"      -d '{login}' \\",
        f"      | {json_of}[\"accessToken\"])')",
        f"  PRODUCT=$(curl -s {auth} 'http://{edge}/v1/products?category=coffee&pageSize=1' \\",
        f"      | {json_of}[\"products\"][0][\"productId\"])')",
        f"  curl -s {auth} http://{edge}/v1/cart/items -H 'content-type: application/json' \\",
        "      -d '{\"productId\": \"'$PRODUCT'\", \"quantity\": 2}'",
        f"  ORDER=$(curl -s {auth} http://{edge}/v1/orders -H 'content-type: application/json' \\",
        "      -d '{\"requestId\": \"'$(date +%s%N)'\", \"paymentToken\": \"tok_sandbox_ok\", "
        f"\"email\": \"{customer.email}\", {address}}}' \\",
        f"      | {json_of}[\"order\"][\"orderId\"])')",
        f"  curl -s {auth} http://{edge}/v1/orders/$ORDER",
        "  # follow its status changes (a JSON array, written as they happen; Ctrl-C to stop)",
        f"  curl -sN {auth} http://{edge}/v1/orders/$ORDER:watch",
        "  # the same checkout over gRPC, through Envoy (tok_sandbox_declined: a declined card)",
        f"  .venv/bin/grpcurl -plaintext {auth} \\",
        "      -d '{\"product_id\": \"'$PRODUCT'\", \"quantity\": 1}' \\",
        f"      {edge} commerce.cart.v1.CartService/AddCartItem",
        f"  .venv/bin/grpcurl -plaintext {auth} \\",
        "      -d '{\"request_id\": \"'$(date +%s%N)'\", \"payment_token\": \"tok_sandbox_ok\", "
        f"\"email\": \"{customer.email}\", {address_grpc}}}' \\",
        f"      {edge} commerce.order.v1.OrderService/PlaceOrder",
        f"  .venv/bin/grpcurl -plaintext {auth} -d '{{\"order_id\": \"'$ORDER'\"}}' "
        f"{edge} commerce.order.v1.OrderService/GetOrder",
    ]
    if mesh.smtp_sink:
        lines.append(f"  # the confirmation email: ls -t {mesh.mail_dir} | head -1")
    return lines


def run(data_dir: Path, seed: bool) -> int:
    started = time.monotonic()
    embedded_postgres = "DATABASE_URL" not in os.environ
    embedded_nats = "NATS_URL" not in os.environ
    settings = Settings()
    embedded_smtp = "COMMERCE_SMTP_HOST" not in os.environ  # else: mail goes to that server
    # Spans go to .data/traces unless OTEL_* name a collector (or turn tracing off).
    local_traces = (settings.otlp_traces_url() is None and not settings.otel_sdk_disabled
                    and (settings.otel_traces_exporter or "otlp").lower() != "none")
    mesh = Mesh(data_dir, settings, embedded_postgres=embedded_postgres, embedded_nats=embedded_nats,
                embedded_smtp=embedded_smtp, extra_steps=int(seed), note_ephemeral_ports=True,
                local_traces=local_traces)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        mesh.start()
        credentials = None
        if seed:
            mesh.progress.begin(f"seeding the demo tenant through {mesh.edge_address}")
            try:
                provision = tuple(mesh.address_of(name) for name in mesh.settings.provision_services
                                  if name in mesh.services)
                summary, credentials = seed_demo(mesh.edge_address, mesh.data_dir, mesh.env, ROOT, provision)
                mesh.progress.end(summary)
            except SeedError as error:
                mesh.progress.fail(f"{error}\nThe mesh keeps running without the demo data.")
        print(instructions(mesh, credentials))
        print(f"\nReady in {time.monotonic() - started:.1f}s.", flush=True)
        print("A process that exits is started again (lines marked [supervisor]); Ctrl-C stops everything.",
              flush=True)
        mesh.supervise()
        while True:
            time.sleep(1)
    except Stop as stop:
        print(f"\n{stop}: stopping ...", flush=True)
        return 0
    except (MeshError, NotReady) as error:
        print(f"\nThe mesh did not start: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        t = time.monotonic()
        mesh.stop()
        print(f"stopped everything in {time.monotonic() - t:.1f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devmesh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start the whole mesh and wait for Ctrl-C")
    run_parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="default: .data/")
    run_parser.add_argument("--no-seed", action="store_true", help="do not seed the demo tenant")
    trace_parser = commands.add_parser("trace", help="print the span tree of one order's traces (make run)")
    trace_parser.add_argument("order_id")
    trace_parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="default: .data/")
    args = parser.parse_args(argv)
    if args.command == "trace":
        return trace(args.data_dir / "traces", args.order_id)
    return run(args.data_dir, seed=not args.no_seed)


def trace(folder: Path, order_id: str) -> int:
    """Every trace of ``folder`` in which a span names ``order_id`` (its checkout, later changes)."""
    traces = traces_of_order(read_spans(folder), order_id)
    if not traces:
        print(f"no span names order {order_id!r} in {folder}/*.jsonl. Spans reach it within about 5 s of the "
              "call, while `make run` runs with tracing (the default, unless OTEL_* say otherwise).",
              file=sys.stderr)
        return 1
    print("\n\n".join(span_tree(t) for t in traces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
