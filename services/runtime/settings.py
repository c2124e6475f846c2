"""Settings, read once from the environment into one typed, immutable object.

Every variable is prefixed ``COMMERCE_`` except the two that point the mesh at
existing servers, ``DATABASE_URL`` and ``NATS_URL``, and OpenTelemetry's own ``OTEL_*``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {"tenant": 15051, "catalog": 15052, "cart": 15053, "order": 15054, "payment": 15055,
                 "meshinfo": 15050}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_", frozen=True, extra="ignore")

    # PostgreSQL server (no database name needed); each service uses its own database on it.
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:15432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "COMMERCE_DATABASE_URL"),
    )
    # Prefix of each service's database name: "<prefix>_<service>".
    database_prefix: str = "commerce"
    # PostgreSQL for the connections that keep a session of their own: LISTEN (the catalog's
    # cache invalidation, the order service's WatchOrder feed). LISTEN does not work through
    # PgBouncer in transaction mode, so with a pooler in DATABASE_URL point this at the server
    # itself. Unset: DATABASE_URL.
    database_listen_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_LISTEN_URL", "COMMERCE_DATABASE_LISTEN_URL"))
    # The role that may change schemas (CREATE, ALTER): the migration step
    # (python -m services.migrate) and the creation of a new tenant's schema run as it; the
    # request paths never do. Unset: DATABASE_URL's role does everything.
    migration_database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MIGRATION_DATABASE_URL", "COMMERCE_MIGRATION_DATABASE_URL"))
    # True (make run, the tests): each service brings every tenant schema to its latest revision
    # at start. False (Kubernetes, compose): the migration step did it before the rollout; a
    # service refuses to start on a schema older than it needs (migrations.SchemaBehind).
    migrate_on_start: bool = True
    # Connections of a service process's request pool (asyncpg); a quarter more (twice, with
    # overflow) for cold paths. db_pool_sizes overrides it per service, e.g. {"order": 8}: the
    # connection budget (services/runtime/budget.py, deploy/README.md) is computed from them.
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_sizes: dict[str, int] = Field(default_factory=dict)
    nats_url: str = Field(
        default="nats://127.0.0.1:14222", validation_alias=AliasChoices("NATS_URL", "COMMERCE_NATS_URL")
    )
    # This process's NATS user and password (each service has its own, allowed to publish only its
    # own events: deploy/README.md, "NATS"); empty: no authentication. With a CA file, the
    # connection is TLS, the server's certificate checked against it.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    nats_tls_ca_file: Path | None = None
    # Most bytes the event stream keeps (oldest events go first beyond it; the dead-letter stream
    # gets an eighth); -1: only the 7-day age limit. Keep the sum under JetStream's max_file_store.
    nats_stream_max_bytes: int = -1
    # Copies JetStream keeps of the event streams (3 on a 3-node NATS cluster).
    nats_stream_replicas: int = 1

    # Address every server binds to (0.0.0.0 in containers).
    host: str = "127.0.0.1"
    # Where to reach other services when not on `host`, e.g. {"tenant": "tenant"} in compose.
    service_hosts: dict[str, str] = Field(default_factory=dict)
    tenant_port: int = SERVICE_PORTS["tenant"]
    catalog_port: int = SERVICE_PORTS["catalog"]
    cart_port: int = SERVICE_PORTS["cart"]
    order_port: int = SERVICE_PORTS["order"]
    payment_port: int = SERVICE_PORTS["payment"]
    # The notifications worker serves only gRPC health (and metrics) on its port.
    notifications_port: int = 15056
    meshinfo_port: int = SERVICE_PORTS["meshinfo"]
    # meshinfo's HTTP endpoint that the edge asks about REST request bodies (unknown fields).
    meshinfo_check_port: int = 15049
    # Prometheus metrics: each service on its gRPC port + this offset; 0 turns metrics off.
    metrics_port_offset: int = 1000
    # Services whose commerce.tenant.v1.ProvisioningService the tenant service calls
    # when a tenant is created (each at settings.address_of(name)).
    provision_services: list[str] = ["catalog", "cart", "order", "payment"]
    # How often the tenant service retries provisioning tenants left PROVISIONING.
    provision_retry_seconds: float = 5.0
    # How often the tenant service looks for new key files in keys_dir (rotation, no restart).
    keys_reload_seconds: float = 5.0
    # A new signing key is published in the JWKS at once but signs only this long after it was
    # added, so every verifier (Envoy keeps the JWKS edge_jwks_cache_seconds) knows it first.
    # Unset: edge_jwks_cache_seconds + keys_reload_seconds + 5 (see key_activation_seconds()).
    keys_activation_seconds: float | None = Field(default=None, ge=0)

    # Password hashes (argon2, 64 MiB each while it runs) the tenant service computes at once, and
    # how long a login waits for a free slot (less if its deadline is sooner) before
    # RESOURCE_EXHAUSTED. Memory per tenant process: its base + concurrency x 66 MiB (deploy/README.md).
    login_hash_concurrency: int = Field(default=2, ge=1)
    login_queue_seconds: float = Field(default=2.0, ge=0)

    jwt_issuer: str = "commerce-mesh"
    # Shared secret the mesh's services present to the tenant service for service tokens
    # (commerce.tenant.v1.ServiceTokenService); empty = service tokens are refused.
    service_secret: SecretStr = SecretStr("")
    jwt_audience: str = "commerce-mesh"
    access_token_ttl_seconds: int = 3600
    guest_token_ttl_seconds: int = 86400
    # Folder of RS256 signing keys (PEM); generated on first start when empty.
    keys_dir: Path = Path(".data/keys")
    # How often a service refreshes the JWKS it verifies tokens with.
    jwks_refresh_seconds: float = 300.0

    # Edge (Envoy): one listener (on `host`) serving REST/JSON and native gRPC.
    envoy_port: int = 8080
    envoy_admin_port: int = 9901
    # Envoy's Prometheus stats (its admin /stats/prometheus, the admin API itself stays on 127.0.0.1)
    # on `host`:this port for Prometheus to scrape; 0 = none (`make run`: the admin port has them).
    envoy_metrics_port: int = 0
    # Envoy worker threads (0 = one per core). On a 2-core box 1 leaves a core to the services.
    envoy_concurrency: int = 0
    # Services the edge routes (and transcodes to REST).
    edge_services: tuple[str, ...] = ("tenant", "catalog", "cart", "order", "payment")
    # Descriptor set of the gRPC-JSON transcoder. A relative path is resolved by Envoy
    # from its working directory (the repository root for envoy/envoy.yaml).
    descriptor_path: Path = Path("gen/descriptor/commerce.pb")
    # Longest a unary call may take through the edge; server-streaming methods get no limit.
    edge_route_timeout_seconds: float = 15.0
    # A stream with no traffic either way for this long is closed by the edge.
    edge_stream_idle_timeout_seconds: float = 3600.0
    # Streams per upstream HTTP/2 connection; beyond it Envoy opens another connection,
    # so load spreads over a service's replicas.
    edge_upstream_max_streams: int = 100
    # Circuit breakers of each Envoy replica, per upstream cluster: calls in flight (unary calls of
    # one service), calls waiting for a connection, connections. Server streams (WatchOrder) have
    # a cluster of their own with edge_max_streams, so watchers never take checkout's capacity.
    # Over a limit Envoy answers 503 / UNAVAILABLE at once.
    edge_max_requests: int = Field(default=1024, ge=1)
    edge_max_pending_requests: int = Field(default=1024, ge=1)
    edge_max_connections: int = Field(default=1024, ge=1)
    edge_max_streams: int = Field(default=10000, ge=1)
    # How long the edge keeps the JWKS before fetching it again (key rotation needs no restart).
    edge_jwks_cache_seconds: int = 30
    # Proxies in front of the edge whose X-Forwarded-For names the client (0: the peer is the client).
    edge_xff_trusted_hops: int = 0
    # Rate limits at the edge: requests per second and burst, per user (token `sub`), per tenant
    # (token `tenant`, all its users together) and per client address (calls without a token).
    # Each Envoy replica holds its own buckets. Defaults are high: set real ones per deployment.
    ratelimit_user_per_second: int = Field(default=10000, ge=1)
    ratelimit_user_burst: int = Field(default=20000, ge=1)
    ratelimit_tenant_per_second: int = Field(default=50000, ge=1)
    ratelimit_tenant_burst: int = Field(default=100000, ge=1)
    ratelimit_anonymous_per_second: int = Field(default=1000, ge=1)
    ratelimit_anonymous_burst: int = Field(default=2000, ge=1)
    # Requests per second of particular tenants, e.g. {"big-shop": 200000} (burst scales alike).
    ratelimit_tenant_overrides: dict[str, int] = Field(default_factory=dict)
    # Buckets each Envoy keeps per kind (users, tenants, addresses); the least recently used goes.
    ratelimit_max_buckets: int = Field(default=50000, ge=1)

    # Where the notifications worker sends email (`make run` starts a local sink that saves .eml files).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_from: str = "Commerce Mesh <orders@commerce-mesh.localhost>"
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_seconds: float = 10.0
    # SMTP sessions the notifications worker keeps open, and so emails it sends at once.
    smtp_sessions: int = Field(default=8, ge=1, le=64)

    # Health (services/runtime/health.py): the database is probed every health_probe_seconds on a
    # connection of its own, each probe given health_probe_timeout_seconds; the names turn
    # NOT_SERVING after health_failures_to_not_serving failed probes in a row. The `liveness`
    # name turns NOT_SERVING when the event loop went longer than liveness_stall_seconds
    # without running its heartbeat.
    health_probe_seconds: float = Field(default=1.0, gt=0)
    health_probe_timeout_seconds: float = Field(default=2.0, gt=0)
    health_failures_to_not_serving: int = Field(default=3, ge=1)
    liveness_stall_seconds: float = Field(default=5.0, gt=0)
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    log_format: str = "console"  # or "json"

    # Payment: HMAC-SHA256 secret the sandbox provider signs its webhooks with; empty = webhooks refused.
    payment_webhook_secret: SecretStr = SecretStr("")
    # Longest the payment service waits for its provider before answering UNAVAILABLE.
    payment_provider_timeout_seconds: float = 5.0
    # Tests and the chaos run only, never set in a deployment: while this file exists, the built-in
    # sandbox provider answers every new payment as it does tok_sandbox_timeout (done, but the answer
    # lost). Unset (the default): no file is ever looked at. Real providers ignore it.
    payment_sandbox_outage_file: Path | None = None

    # Order sagas: how long a runner holds an order's saga (a process that dies holds it this
    # long at most), how often the recovery worker looks for sagas left behind, and how long
    # an unfinished saga must have been untouched before it takes it over.
    order_saga_lease_seconds: float = Field(default=30.0, gt=0)
    order_recovery_interval_seconds: float = Field(default=5.0, gt=0)
    order_recovery_idle_seconds: float = Field(default=10.0, ge=0)

    # Traces (services/runtime/telemetry.py): OpenTelemetry's standard variables. Off unless an
    # OTLP/HTTP endpoint is set; ``..._TRACES_ENDPOINT`` is used as it is, ``..._ENDPOINT`` + /v1/traces.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT"))
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    otel_traces_exporter: str | None = Field(default=None, validation_alias=AliasChoices("OTEL_TRACES_EXPORTER"))
    otel_sdk_disabled: bool | None = Field(default=None, validation_alias=AliasChoices("OTEL_SDK_DISABLED"))
    # Fraction of new traces kept (OTEL_TRACES_SAMPLER=parentbased_traceidratio); Envoy samples alike.
    otel_traces_sampler: str | None = Field(default=None, validation_alias=AliasChoices("OTEL_TRACES_SAMPLER"))
    otel_traces_sampler_arg: str | None = Field(default=None,
                                                validation_alias=AliasChoices("OTEL_TRACES_SAMPLER_ARG"))

    def otlp_traces_url(self) -> str | None:
        """Where spans go (OTLP over HTTP/protobuf); None when tracing is off."""
        if self.otel_sdk_disabled or (self.otel_traces_exporter or "otlp").lower() == "none":
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    def trace_sampling_percent(self) -> float:
        """Percent of new traces sampled, from OTEL_TRACES_SAMPLER(_ARG) (100 unless a ratio is set)."""
        if (self.otel_traces_sampler or "").endswith("traceidratio") and self.otel_traces_sampler_arg:
            return max(0.0, min(100.0, float(self.otel_traces_sampler_arg) * 100))
        if self.otel_traces_sampler in ("always_off", "parentbased_always_off"):
            return 0.0
        return 100.0

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def address_of(self, service: str) -> str:
        host = self.service_hosts.get(service, "127.0.0.1" if self.host == "0.0.0.0" else self.host)
        return f"{host}:{self.port_of(service)}"

    def pool_size_of(self, service: str) -> int:
        return self.db_pool_sizes.get(service, self.db_pool_size)

    def database_name(self, service: str) -> str:
        return f"{self.database_prefix}_{service}"

    def key_activation_seconds(self) -> float:
        """How long a new signing key is only published before it signs."""
        if self.keys_activation_seconds is not None:
            return self.keys_activation_seconds
        return self.edge_jwks_cache_seconds + self.keys_reload_seconds + 5.0


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return Settings()
