"""Generate gen/ from proto/: Python messages, .pyi stubs, gRPC stubs and the
descriptor set Envoy's gRPC-JSON transcoder reads, and (scripts/gen_openapi.py)
the OpenAPI document of the REST edge.

    python scripts/gen_protos.py [--out DIR]

Writing to another folder lets the tests compare a fresh generation with the
committed gen/ (stale gen/ fails the suite).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
# Messages the edge must know but no commerce proto imports:
# google.rpc.Status details for convert_grpc_status.
EXTRA_DESCRIPTOR_INPUTS = ["google/rpc/error_details.proto", "google/rpc/status.proto"]


def _includes() -> list[str]:
    """proto/ (with the googleapis files it vendors) and the well-known types protoc ships."""
    well_known = Path(protoc.__file__).parent / "_proto"
    return [f"-I{PROTO_DIR}", f"-I{well_known}"]


def _protos() -> list[str]:
    """The commerce protos (proto/google is vendored: its Python is googleapis-common-protos)."""
    return sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "commerce").rglob("*.proto"))


def _run(args: list[str]) -> None:
    if protoc.main(["grpc_tools.protoc", *args]) != 0:
        sys.exit(f"protoc failed: {' '.join(args)}")


def generate(out: Path) -> None:
    py_out = out / "python"
    desc_out = out / "descriptor"
    for d in (py_out, desc_out):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    protos = _protos()
    _run([*_includes(), f"--python_out={py_out}", f"--pyi_out={py_out}",
          f"--grpc_python_out={py_out}", *protos])
    for folder in [py_out / "commerce", *(p for p in (py_out / "commerce").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    _run([*_includes(), "--include_imports", "--include_source_info",
          f"--descriptor_set_out={desc_out / 'commerce.pb'}", *protos, *EXTRA_DESCRIPTOR_INPUTS])
    # The OpenAPI document of the REST edge, from the descriptor set just written.
    subprocess.run([sys.executable, str(ROOT / "scripts/gen_openapi.py"), "--descriptor",
                    str(desc_out / "commerce.pb"), "--out", str(out / "openapi" / "commerce.openapi.json")],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "gen")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for sub in ("python", "descriptor", "openapi"):
            target = args.out / sub
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(Path(tmp) / sub, target)
    print(f"generated {len(_protos())} protos into {args.out}")


if __name__ == "__main__":
    main()
