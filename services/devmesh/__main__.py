"""python -m services.devmesh run: the whole mesh on this machine, with a demo tenant.

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
    mesh = Mesh(data_dir, settings, embedded_postgres=embedded_postgres, embedded_nats=embedded_nats,
                embedded_smtp=embedded_smtp, extra_steps=int(seed), note_ephemeral_ports=True)
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
    args = parser.parse_args(argv)
    return run(args.data_dir, seed=not args.no_seed)


if __name__ == "__main__":
    sys.exit(main())
