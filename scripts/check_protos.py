"""buf on proto/, offline: build, lint, and breaking changes against main.

    python scripts/check_protos.py [--against REF]

`proto/` is a complete buf module (googleapis vendored under proto/google), so `buf build`
and `buf lint` need no registry. `buf breaking` compares it with the contract of REF (default:
`main`, else `origin/main`): the descriptor set REF committed in gen/descriptor/commerce.pb,
so REF's own proto/ need not build (it did not before googleapis was vendored). buf comes
from npm (package.json, installed by `make setup`). Exits non-zero on the first failing step,
saying which and why; `make lint` and tests/test_contract.py run this.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = "gen/descriptor/commerce.pb"
DEFAULT_REFS = ("main", "origin/main")


class CheckFailed(Exception):
    pass


def buf(*args: str) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    if npx is None:
        raise CheckFailed("npx is not installed: install Node.js (npm), then `make setup`")
    return subprocess.run([npx, "--no-install", "buf", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def _step(name: str, *args: str) -> str:
    done = buf(*args)
    if done.returncode != 0:
        raise CheckFailed(f"buf {name} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def base_ref(wanted: str | None) -> str | None:
    """The first of ``wanted`` (or main, origin/main) that names a commit here."""
    for ref in (wanted,) if wanted else DEFAULT_REFS:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=ROOT,
                               capture_output=True, text=True, check=False)
        if found.returncode == 0:
            return ref
    return None


def breaking(ref: str) -> None:
    shown = subprocess.run(["git", "show", f"{ref}:{DESCRIPTOR}"], cwd=ROOT, capture_output=True, check=False)
    if shown.returncode != 0:
        raise CheckFailed(f"{ref} has no {DESCRIPTOR}: {shown.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "against.binpb"
        image.write_bytes(shown.stdout)
        _step(f"breaking (against {ref})", "breaking", "proto", "--against", f"{image}#format=binpb")


def check(against: str | None, *, require_base: bool) -> list[str]:
    """What passed, one line each; raises CheckFailed on the first failure."""
    done = []
    _step("build", "build", "proto", "-o", "/dev/null")
    done.append("buf build proto: OK")
    _step("lint", "lint", "proto")
    done.append("buf lint proto: OK")
    ref = base_ref(against)
    if ref is None:
        missing = against or " nor ".join(DEFAULT_REFS)
        if require_base:
            raise CheckFailed(f"no {missing} to check breaking changes against (git fetch origin main:main)")
        done.append(f"buf breaking: skipped, no {missing} in this clone")
        return done
    breaking(ref)
    done.append(f"buf breaking proto against {ref}: OK")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="git ref whose contract must still be honoured (default: main)")
    parser.add_argument("--require-base", action="store_true", help="fail when the ref is missing (CI)")
    args = parser.parse_args()
    try:
        for line in check(args.against, require_base=args.require_base):
            print(line)
    except CheckFailed as failed:
        sys.exit(str(failed))


if __name__ == "__main__":
    main()
