"""python -m bench [BENCHMARK ...]: run benchmarks (all when none is named), print their
tables, and write the figures to bench/results/latest.json.

Every benchmark module has NAME, SUMMARY, STEPS (its progress lines), Options (a
dataclass with vus, warmup_s, duration_s) and run(harness, options) -> dict (its JSON).
Add a module to BENCHMARKS to add a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from types import FrameType, ModuleType
from typing import Any

from bench import getproduct, placeorder
from bench.harness import RESULTS, Harness
from services.devmesh.mesh import ROOT

BENCHMARKS: dict[str, ModuleType] = {module.NAME: module for module in (getproduct, placeorder)}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks:\n" + "\n".join(f"  {name:<12} {m.SUMMARY}" for name, m in BENCHMARKS.items()))
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help="one of: " + ", ".join(BENCHMARKS) + " (default: all)")
    parser.add_argument("--vus", type=int, default=16, help="concurrent k6 virtual users (default 16)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per scenario (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    chosen = [BENCHMARKS[name] for name in (args.benchmarks or BENCHMARKS)]
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    harness = Harness(sum(int(m.STEPS) for m in chosen))
    failed = False
    results: dict[str, Any] = {}
    try:
        harness.start()
        for module in chosen:
            options = module.Options(vus=args.vus, warmup_s=args.warmup, duration_s=args.duration)
            print(f"\n== {module.NAME}: {module.SUMMARY}", flush=True)
            results[module.NAME] = module.run(harness, options)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything ...", file=sys.stderr, flush=True)
        return 130
    except Exception as error:
        failed = True
        print(f"\nbenchmark failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        harness.stop(failed)
    report = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": _commit(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "seconds": round(time.monotonic() - started, 1), "benchmarks": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfigures written to {(RESULTS / 'latest.json').relative_to(ROOT)} "
          f"({report['seconds']}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

