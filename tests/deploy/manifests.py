"""Reading the deployment files the tests check: the Kubernetes manifests of deploy/k8s
(through their kustomization), the examples beside them, and docker-compose.yml."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from services.runtime.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
NAMESPACE = "commerce-mesh"
SETTINGS_CONFIGMAP = "commerce-settings"

Body = dict[str, Any]

# Processes of the mesh that are not gRPC services others call: they serve health (and
# metrics) on settings.<name>_port only, with the overall health name "".
WORKERS = ("notifications",)
# Every process run as `python -m services.<name>` with a port of its own in the settings.
PROCESSES = (*SERVICE_PORTS, *WORKERS)
# Shared secret -> the mesh processes that read it: the tenant service checks the service
# secret and the other services present it for service tokens (services/runtime/service_auth.py);
# payment checks its provider's webhook signatures.
SECRET_USERS = {"COMMERCE_SERVICE_SECRET": frozenset({"tenant", "catalog", "cart", "order", "payment"}),
                "COMMERCE_PAYMENT_WEBHOOK_SECRET": frozenset({"payment"})}


@dataclass(frozen=True)
class Manifest:
    path: Path
    body: Body

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}: {self.kind}/{self.name}"


def load_yaml_documents(path: Path) -> list[Body]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@cache
def kustomization() -> Body:
    body: Body = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return body


def env_file(path: Path) -> dict[str, str]:
    """A kustomize env file (KEY=VALUE lines; # comments) as a dict."""
    data = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            data[key.strip()] = value
    return data


def generator_sources() -> list[str]:
    """The files kustomization.yaml's configMapGenerator reads, relative to deploy/k8s."""
    return [source for generator in kustomization().get("configMapGenerator", [])
            for source in [*generator.get("envs", []), *generator.get("files", [])]]


def _generated() -> list[Manifest]:
    """The ConfigMaps configMapGenerator makes (under their plain names; kustomize adds a hash)."""
    made = []
    for generator in kustomization().get("configMapGenerator", []):
        data: dict[str, str] = {}
        for source in generator.get("envs", []):
            data |= env_file(K8S / source)
        for source in generator.get("files", []):
            data[Path(source).name] = (K8S / source).read_text()
        first = [*generator.get("envs", []), *generator.get("files", [])][0]
        made.append(Manifest(K8S / first, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": generator["name"]}, "data": data}))
    return made


@cache
def k8s_manifests() -> tuple[Manifest, ...]:
    """Every object `kubectl apply -k deploy/k8s` sends, in kustomization order (then the
    generated ConfigMaps)."""
    return tuple([Manifest(K8S / name, doc)
                  for name in kustomization()["resources"] for doc in load_yaml_documents(K8S / name)]
                 + _generated())


@cache
def example_manifests() -> tuple[Manifest, ...]:
    return tuple(Manifest(path, doc) for path in sorted((DEPLOY / "examples").glob("*.yaml"))
                 for doc in load_yaml_documents(path))


def find(kind: str, name: str) -> Body:
    for manifest in k8s_manifests():
        if manifest.kind == kind and manifest.name == name:
            return manifest.body
    raise AssertionError(f"deploy/k8s has no {kind}/{name}")


def of_kind(kind: str) -> list[Body]:
    return [m.body for m in k8s_manifests() if m.kind == kind]


def pod_spec(workload: Body) -> Body:
    spec: Body = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Body) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def workloads() -> list[Body]:
    return of_kind("Deployment") + of_kind("StatefulSet")


def configmap_env(name: str = SETTINGS_CONFIGMAP) -> dict[str, str]:
    data: dict[str, str] = find("ConfigMap", name)["data"]
    return data


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ holding exactly the settings in ``values`` (no COMMERCE_* from outside)."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("COMMERCE_") or k in ("DATABASE_URL", "NATS_URL")]:
            del os.environ[key]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from(values: Mapping[str, str]) -> Settings:
    """The Settings a process started with these environment variables reads."""
    with environment(values):
        return Settings()


def python_module(command: list[str]) -> str | None:
    """``services.catalog`` for ``python -m services.catalog ...``; None for other commands."""
    if len(command) >= 3 and command[0] == "python" and command[1] == "-m":
        return command[2]
    return None


def shell_modules(script: str) -> list[str]:
    """Modules run with ``python -m`` anywhere in a ``sh -c`` script."""
    words = shlex.split(script.replace("&&", " ; ").replace(";", " ; "))
    return [words[i + 2] for i, word in enumerate(words[:-2]) if word == "python" and words[i + 1] == "-m"]


def modules_of(command: list[str]) -> list[str]:
    if command[:2] == ["sh", "-c"]:
        return shell_modules(command[2])
    module = python_module(command)
    return [] if module is None else [module]


def module_file(module: str) -> Path | None:
    """The file ``python -m module`` runs, when it exists."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def compose() -> Body:
    """docker-compose.yml with YAML merge keys (<<: *service) resolved, as Compose does."""
    body: Body = yaml.safe_load(COMPOSE_FILE.read_text())
    return body


def compose_command(service: Body) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)
