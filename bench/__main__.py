"""python -m bench [BENCHMARK ...]: run benchmarks (all when none is named), print their
tables, and write the figures to bench/results/latest.json.

Every benchmark module has NAME, SUMMARY, STEPS (its progress lines), Options (a
dataclass with some of vus, warmup_s, duration_s, soak_s) and run(harness, options) ->
dict (its JSON; a "failed" entry that is not None makes the command exit 1, after the
figures are written). Add a module to BENCHMARKS to add a benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from types import FrameType, ModuleType
from typing import Any

from bench import chaos, getproduct, placeorder, search, tenants, tracing
from bench.harness import RESULTS, Harness
from services.devmesh.mesh import ROOT

BENCHMARKS: dict[str, ModuleType] = {module.NAME: module for module in (getproduct, placeorder, search, tracing)}
# Run only when named (`python -m bench chaos`, `python -m bench tenants`): not part of `make bench`.
ON_REQUEST: dict[str, ModuleType] = {module.NAME: module for module in (chaos, tenants)}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks:\n" + "\n".join(f"  {name:<12} {m.SUMMARY}" for name, m in BENCHMARKS.items())
        + "\nrun only when named:\n" + "\n".join(f"  {name:<12} {m.SUMMARY}" for name, m in ON_REQUEST.items()))
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help="one of: " + ", ".join([*BENCHMARKS, *ON_REQUEST]) + " (default: "
                        + ", ".join(BENCHMARKS) + ")")
    parser.add_argument("--vus", type=int, default=16, help="concurrent k6 virtual users (default 16)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per scenario (default 10)")
    parser.add_argument("--soak", type=int, default=60,
                        help="measured seconds of the PlaceOrder soak at the max rate (default 60; the target needs "
                             ">= 60)")
    parser.add_argument("--short", action="store_true",
                        help="chaos: every fault shorter, at a lower rate (CI); tenants: up to 100 tenants")
    parser.add_argument("--catalog-size", type=int, default=1_000_000,
                        help="products the search benchmark imports into its tenant (default 1,000,000; the "
                             "targets are for a million)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    known = {**BENCHMARKS, **ON_REQUEST}
    unknown = [name for name in args.benchmarks if name not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(known)}")
    chosen = [known[name] for name in (args.benchmarks or BENCHMARKS)]
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    harness = Harness(sum(int(m.STEPS) for m in chosen),
                      {k: v for m in chosen for k, v in getattr(m, "SETTINGS", {}).items()})
    failed = False
    results: dict[str, Any] = {}
    try:
        harness.start()
        for module in chosen:
            given = {"vus": args.vus, "warmup_s": args.warmup, "duration_s": args.duration, "soak_s": args.soak,
                     "short": args.short, "catalog_size": args.catalog_size}
            wanted = {f.name for f in dataclasses.fields(module.Options)}
            options = module.Options(**{k: v for k, v in given.items() if k in wanted})
            print(f"\n== {module.NAME}: {module.SUMMARY}", flush=True)
            results[module.NAME] = module.run(harness, options)
            failed = failed or bool(results[module.NAME].get("failed"))  # keeps the mesh's logs
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything ...", file=sys.stderr, flush=True)
        return 130
    except Exception as error:
        failed = True
        traceback.print_exc()
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
    written = RESULTS / ("latest.json" if all(m.NAME in BENCHMARKS for m in chosen)
                         else "-".join(m.NAME for m in chosen) + ".json")
    written.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfigures written to {written.relative_to(ROOT)} "
          f"({report['seconds']}s in all)")
    failures = [f"{name}: {result['failed']}" for name, result in results.items() if result.get("failed")]
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

