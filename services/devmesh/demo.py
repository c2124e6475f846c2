"""The demo tenant of `make run`, seeded through the public gRPC API (via the
edge), idempotently: a second run finds everything in place and adds nothing.

Passwords are generated on the first run and kept in <data>/demo-credentials.json
(never in the repository)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc, tenant_pb2, tenant_pb2_grpc

DEMO_TENANT = "demo"
PLATFORM_TENANT = "platform"
ADMIN_EMAIL = "admin@platform.test"
SELLER_EMAIL = "seller@demo.test"
CUSTOMER_EMAIL = "customer@demo.test"


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    title: str
    category: str
    price_minor: int
    stock: int
    description: str = ""
    attributes: tuple[tuple[str, str], ...] = ()


PRODUCTS = [
    DemoProduct("BOOK-001", "The Pragmatic Programmer", "books", 3999, 25, "20th anniversary edition",
                (("format", "hardcover"),)),
    DemoProduct("BOOK-002", "Designing Data-Intensive Applications", "books", 4599, 12, "",
                (("format", "paperback"),)),
    DemoProduct("BOOK-003", "Architecture Patterns with Python", "books", 3499, 8, "", (("format", "paperback"),)),
    DemoProduct("COFFEE-001", "Ethiopia Yirgacheffe, 250 g", "coffee", 1450, 40, "washed, light roast",
                (("roast", "light"), ("origin", "Ethiopia"))),
    DemoProduct("COFFEE-002", "Colombia Huila, 250 g", "coffee", 1290, 35, "medium roast",
                (("roast", "medium"), ("origin", "Colombia"))),
    DemoProduct("COFFEE-003", "Espresso blend, 1 kg", "coffee", 3900, 10, "", (("roast", "dark"),)),
    DemoProduct("KITCHEN-001", "Pour-over dripper", "kitchen", 2400, 15, "ceramic, size 02",
                (("material", "ceramic"), ("color", "white"))),
    DemoProduct("KITCHEN-002", "Burr grinder", "kitchen", 12900, 5, "", (("material", "steel"), ("color", "black"))),
    DemoProduct("KITCHEN-003", "Gooseneck kettle", "kitchen", 5900, 7, "",
                (("material", "steel"), ("color", "silver"))),
    DemoProduct("OUTDOOR-001", "Insulated bottle, 750 ml", "outdoor", 2900, 30, "", (("color", "blue"),)),
    DemoProduct("OUTDOOR-002", "Camping mug", "outdoor", 1500, 50, "", (("material", "enamel"), ("color", "white"))),
    DemoProduct("OUTDOOR-003", "Trail backpack, 28 l", "outdoor", 8900, 4, "", (("color", "black"),)),
]


@dataclass(frozen=True)
class Account:
    tenant_id: str
    email: str
    password: str


@dataclass(frozen=True)
class Credentials:
    admin: Account
    seller: Account
    customer: Account

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(**{role: Account(**account) for role, account in data.items()})
        made = cls(Account(PLATFORM_TENANT, ADMIN_EMAIL, secrets.token_urlsafe(12)),
                   Account(DEMO_TENANT, SELLER_EMAIL, secrets.token_urlsafe(12)),
                   Account(DEMO_TENANT, CUSTOMER_EMAIL, secrets.token_urlsafe(12)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({role: vars(getattr(made, role)) for role in ("admin", "seller", "customer")},
                                   indent=2) + "\n")
        return made


class SeedError(RuntimeError):
    pass


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    return error.code()


class Seeder:
    def __init__(self, edge_address: str, env: dict[str, str], credentials: Credentials, cwd: Path,
                 provision: tuple[str, ...] = ()) -> None:
        self._provision = provision
        self._channel = grpc.insecure_channel(edge_address)
        self._tenants = tenant_pb2_grpc.TenantServiceStub(self._channel)
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._env = env
        self._cwd = cwd
        self.credentials = credentials

    def close(self) -> None:
        self._channel.close()

    def login(self, account: Account) -> str:
        reply = self._tenants.Login(tenant_pb2.LoginRequest(
            tenant_id=account.tenant_id, email=account.email, password=account.password), timeout=10)
        return str(reply.access_token)

    def _admin_token(self) -> str:
        admin = self.credentials.admin
        try:
            return self.login(admin)
        except grpc.RpcError as error:
            if _code(error) not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND):
                raise
        env = {**self._env, "COMMERCE_DEMO_ADMIN_PASSWORD": admin.password}
        done = subprocess.run(
            [sys.executable, "-m", "services.tenant", "create-admin", "--email", admin.email,
             "--password-env", "COMMERCE_DEMO_ADMIN_PASSWORD"],
            env=env, cwd=self._cwd, capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise SeedError(f"creating the platform admin failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                            "If .data/demo-credentials.json was lost, `make clean-data` starts afresh.")
        try:
            return self.login(admin)
        except grpc.RpcError as error:
            raise SeedError(f"the platform admin {admin.email} cannot log in ({_code(error).name}): its password is "
                            "not the one in demo-credentials.json. `make clean-data` starts afresh.") from None

    def _ensure_tenant(self, admin: str) -> None:
        try:
            reply = self._tenants.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=DEMO_TENANT),
                                            metadata=_bearer(admin), timeout=10)
            state = reply.tenant.state
        except grpc.RpcError as error:
            if _code(error) != grpc.StatusCode.NOT_FOUND:
                raise
            created = self._tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
                tenant=tenant_pb2.Tenant(tenant_id=DEMO_TENANT, display_name="Demo Store", currency_code="USD"),
                request_id="devmesh-demo-tenant"), metadata=_bearer(admin), timeout=30)
            state = created.tenant.state
        deadline = time.monotonic() + 30
        while state != tenant_pb2.TENANT_STATE_ACTIVE:
            if time.monotonic() > deadline:
                raise SeedError(f"tenant {DEMO_TENANT!r} is still {tenant_pb2.TenantState.Name(state)} after 30s")
            time.sleep(0.3)
            state = self._tenants.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=DEMO_TENANT),
                                            metadata=_bearer(admin), timeout=10).tenant.state

    def _ensure_provisioned(self, admin: str) -> None:
        """A demo tenant from an older run may predate a service: provision it there (idempotent)."""
        for address in self._provision:
            with grpc.insecure_channel(address) as channel:
                provisioning_pb2_grpc.ProvisioningServiceStub(channel).ProvisionTenant(
                    provisioning_pb2.ProvisionTenantRequest(tenant_id=DEMO_TENANT, currency_code="USD"),
                    metadata=_bearer(admin), timeout=30)

    def _ensure_users(self, admin: str) -> None:
        seller, customer = self.credentials.seller, self.credentials.customer
        try:
            self._tenants.CreateUser(tenant_pb2.CreateUserRequest(
                tenant_id=DEMO_TENANT, email=seller.email, password=seller.password, display_name="Demo Seller",
                role=tenant_pb2.USER_ROLE_SELLER, request_id="devmesh-demo-seller"),
                metadata=_bearer(admin), timeout=10)
        except grpc.RpcError as error:
            if _code(error) != grpc.StatusCode.ALREADY_EXISTS:
                raise
        try:
            self._tenants.RegisterCustomer(tenant_pb2.RegisterCustomerRequest(
                tenant_id=DEMO_TENANT, email=customer.email, password=customer.password,
                display_name="Demo Customer", request_id="devmesh-demo-customer"), timeout=10)
        except grpc.RpcError as error:
            if _code(error) != grpc.StatusCode.ALREADY_EXISTS:
                raise

    def _existing_skus(self, seller: str) -> set[str]:
        skus: set[str] = set()
        token = ""
        while True:
            reply = self._catalog.ListProducts(catalog_pb2.ListProductsRequest(page_size=100, page_token=token),
                                               metadata=_bearer(seller), timeout=10)
            skus |= {p.sku for p in reply.products}
            token = reply.next_page_token
            if not token:
                return skus

    def _ensure_products(self, seller: str) -> int:
        """One ImportProducts call (an upsert by sku): new products come with their stock; those
        of an earlier run keep theirs (what was sold stays sold) and get any new attributes."""
        existing = self._existing_skus(seller)
        entries = []
        for item in PRODUCTS:
            entry = catalog_pb2.CatalogEntry(product=catalog_pb2.Product(
                sku=item.sku, title=item.title, description=item.description, category=item.category,
                attributes=dict(item.attributes),
                price=money_pb2.Money(currency_code="USD", amount_minor=item.price_minor)))
            if item.sku not in existing:
                entry.on_hand = item.stock
            entries.append(entry)
        reply = self._catalog.ImportProducts(catalog_pb2.ImportProductsRequest(entries=entries),
                                             metadata=_bearer(seller), timeout=30)
        if reply.failed_count:
            failed = next(r for r in reply.results if r.outcome == catalog_pb2.IMPORT_OUTCOME_FAILED)
            raise SeedError(f"importing the demo products failed: {failed.sku}: {failed.error.message}")
        return int(reply.created_count)

    def seed(self) -> str:
        admin = self._admin_token()
        self._ensure_tenant(admin)
        self._ensure_provisioned(admin)
        self._ensure_users(admin)
        added = self._ensure_products(self.login(self.credentials.seller))
        if added:
            return f"tenant {DEMO_TENANT!r}: seller, customer and {added} products added"
        return f"tenant {DEMO_TENANT!r} already seeded"


def seed_demo(edge_address: str, data_dir: Path, env: dict[str, str], cwd: Path,
              provision: tuple[str, ...] = ()) -> tuple[str, Credentials]:
    """``provision``: addresses of the services whose ProvisioningService must know the demo tenant."""
    credentials = Credentials.load_or_create(data_dir / "demo-credentials.json")
    seeder = Seeder(edge_address, env, credentials, cwd, provision)
    try:
        return seeder.seed(), credentials
    except grpc.RpcError as error:
        raise SeedError(f"{_code(error).name}: {error.details()}") from None
    finally:
        seeder.close()

