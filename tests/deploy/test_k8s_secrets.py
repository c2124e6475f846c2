"""Secrets in Kubernetes: every Secret a pod reads is one deploy/README.md shows how to
create (with the key the pod reads); the shared secrets reach exactly the processes that
use them, from a Secret, and the ConfigMap holds none."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import pytest

from services.runtime.settings import Settings
from tests.deploy.manifests import (
    DEPLOY,
    PROCESSES,
    SECRET_USERS,
    Body,
    configmap_env,
    find,
    pod_spec,
    python_module,
    workloads,
)


def _containers(workload: Body) -> list[Body]:
    spec = pod_spec(workload)
    containers: list[Body] = spec["containers"] + spec.get("initContainers", [])
    return containers


def _secret_uses() -> Iterator[tuple[str, str, str | None, bool]]:
    """(workload, Secret name, key or None for the whole Secret, optional) for each use."""
    for workload in workloads():
        name = workload["metadata"]["name"]
        for container in _containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield name, ref["name"], ref["key"], bool(ref.get("optional", False))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    yield name, source["secretRef"]["name"], None, bool(source["secretRef"].get("optional", False))
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                yield name, volume["secret"]["secretName"], None, bool(volume["secret"].get("optional", False))


def _readme_creates() -> dict[str, str]:
    """Secret name -> the `kubectl create secret generic` command deploy/README.md shows."""
    readme = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in readme.splitlines():
        if "create secret generic" in line:
            words = shlex.split(line.split("create secret generic", 1)[1])
            found.setdefault(words[0], line)
    return found


def _process(workload: Body) -> str | None:
    module = python_module(pod_spec(workload)["containers"][0].get("command", []))
    return module.removeprefix("services.") if module else None


def test_the_readme_shows_how_to_create_every_secret_a_pod_reads() -> None:
    creates = _readme_creates()
    for workload, secret, key, _optional in _secret_uses():
        assert secret in creates, f"{workload} reads Secret {secret}, which deploy/README.md never creates"
        if key is not None:
            assert re.search(rf"--from-literal={re.escape(key)}=", creates[secret]), (
                f"{workload} reads key {key} of {secret}; the README creates: {creates[secret]}")


@pytest.mark.parametrize("secret", sorted(SECRET_USERS))
def test_a_shared_secret_comes_from_a_required_secret_to_exactly_the_processes_using_it(secret: str) -> None:
    assert secret.removeprefix("COMMERCE_").lower() in Settings.model_fields
    holders = set()
    for workload in workloads():
        for container in _containers(workload):
            for env in container.get("env", []):
                if env["name"] == secret:
                    assert "value" not in env, f"{workload['metadata']['name']}: a secret value in the manifest"
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert not ref.get("optional", False), "an empty secret would refuse every call: fail the pod"
                    holders.add(_process(workload))
    assert holders == set(SECRET_USERS[secret])
    assert holders <= set(PROCESSES)


def test_each_shared_secret_has_its_own_secret_object() -> None:
    """So the webhook secret can be given to the payment pods (and rotated) alone."""
    names: dict[str, set[str]] = {}
    for _workload, secret, key, _optional in _secret_uses():
        if key in SECRET_USERS:
            names.setdefault(key, set()).add(secret)
    assert all(len(secrets) == 1 for secrets in names.values()), names
    assert len({next(iter(s)) for s in names.values()}) == len(SECRET_USERS)


def test_the_configmap_holds_no_secret() -> None:
    fields = Settings.model_fields
    for key in configmap_env():
        field = fields.get(key.removeprefix("COMMERCE_").lower())
        secret_typed = field is not None and "SecretStr" in str(field.annotation)
        assert not secret_typed and "DATABASE_URL" not in key and "PASSWORD" not in key, key


def test_only_the_notifications_worker_reads_the_optional_smtp_login() -> None:
    smtp = [(workload, optional) for workload, secret, _key, optional in _secret_uses() if secret == "commerce-smtp"]
    assert smtp == [("notifications", True)]
    container = pod_spec(find("Deployment", "notifications"))["containers"][0]
    assert {"configMapRef": {"name": "commerce-settings"}} in container["envFrom"]
