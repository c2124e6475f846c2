"""The Python client: gen/python is a typed package that pip installs into any project.
The tests, the services and bench/ import it installed (make setup), not from a path,
so what they exercise is what an integrator gets."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import commerce

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gen" / "python"
NAME = "commerce-mesh-client"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_the_tests_import_the_installed_package_and_it_is_the_current_generation() -> None:
    installed = Path(next(iter(commerce.__path__)))
    assert installed.parent == Path(sysconfig.get_paths()["purelib"]), f"commerce comes from {installed}"
    assert _files(installed) == _files(PACKAGE / "commerce"), "installed client is stale: run `make setup`"
    meta = distribution(NAME)
    assert meta.version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_a_wheel_of_gen_python_installs_into_another_project_typed(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(PACKAGE)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("commerce_mesh_client-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "commerce/py.typed" in names
    assert {"commerce/catalog/v1/catalog_pb2.pyi", "commerce/catalog/v1/catalog_pb2_grpc.pyi"} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: grpcio>=" in metadata and "Requires-Dist: protobuf<" in metadata
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from commerce.order.v1 import order_pb2, order_pb2_grpc; "
             "print(order_pb2_grpc.__file__); print(order_pb2.PlaceOrderRequest(request_id='r').request_id)")
    ran = subprocess.run([sys.executable, "-c", probe, str(site)], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    where, value = ran.stdout.split()
    assert Path(where).is_relative_to(site) and value == "r"
