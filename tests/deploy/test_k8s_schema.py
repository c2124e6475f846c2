"""The Kubernetes manifests are what a cluster accepts: strict schema validation for the
oldest supported and the newest known Kubernetes, a kustomization that applies them all,
and no secret value in the repository."""

from __future__ import annotations

import re

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes_validate.utils import latest_version  # type: ignore[import-untyped]

from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    NAMESPACE,
    Manifest,
    example_manifests,
    generator_sources,
    k8s_manifests,
    kustomization,
    of_kind,
    pod_spec,
    workloads,
)

OLDEST_SUPPORTED = "1.30.0"  # deploy/README.md: "Kubernetes 1.30 or newer"


def _errors(manifests: tuple[Manifest, ...], version: str) -> list[str]:
    errors = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest.body, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{manifest}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{manifest}: {error.message}")
    return errors


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, latest_version()])
def test_every_manifest_passes_strict_kubernetes_schema_validation(version: str) -> None:
    manifests = k8s_manifests() + example_manifests()
    assert len(manifests) > 20
    assert _errors(manifests, version) == []


def test_a_misspelt_field_fails_validation() -> None:
    deployment = next(m for m in k8s_manifests() if m.kind == "Deployment")
    body = {**deployment.body, "spec": {**deployment.body["spec"], "replica": 2}}
    assert _errors((Manifest(deployment.path, body),), latest_version()) != []


def test_kustomization_lists_every_manifest_in_its_folder_and_nothing_else() -> None:
    on_disk = {str(p.relative_to(K8S)) for p in K8S.rglob("*") if p.is_file() and p.name != "kustomization.yaml"
               and p.parent.name != "migrate"}
    listed = [*kustomization()["resources"], *generator_sources()]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == on_disk


def test_kustomization_puts_everything_in_the_namespace_it_creates() -> None:
    assert kustomization()["namespace"] == NAMESPACE
    assert [ns["metadata"]["name"] for ns in of_kind("Namespace")] == [NAMESPACE]
    assert [str(m) for m in k8s_manifests() if m.body["metadata"].get("namespace", NAMESPACE) != NAMESPACE] == []


def test_object_names_are_unique_per_kind() -> None:
    keys = [(m.kind, m.name) for m in k8s_manifests()]
    assert len(keys) == len(set(keys))


def test_every_image_is_the_project_image_kustomize_sets_or_a_pinned_upstream_tag() -> None:
    project_images = {entry["name"] for entry in kustomization()["images"]}
    assert project_images == {"commerce-mesh", "commerce-mesh-edge"}
    for workload in workloads():
        spec = pod_spec(workload)
        for container in spec["containers"] + spec.get("initContainers", []):
            image = container["image"]
            pinned = re.fullmatch(r"[a-z0-9./-]+:v?\d+\.\d+[\w.-]*", image) is not None
            assert image in project_images or pinned, f"{workload['metadata']['name']}: {image}"


def _referenced_secrets() -> set[str]:
    names = set()
    for workload in workloads():
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in spec["containers"] + spec.get("initContainers", []):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            names |= {source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source}
    return names


def test_no_secret_is_committed_and_each_one_used_is_created_by_the_readme() -> None:
    assert of_kind("Secret") == []
    referenced = _referenced_secrets()
    assert referenced == {"commerce-database", "commerce-signing-keys", "commerce-service-secret",
                          "commerce-payment-webhook", "commerce-smtp", "commerce-pgbouncer-users",
                          "commerce-database-ddl", "commerce-nats-users", "commerce-nats-tls"}
    readme = (DEPLOY / "README.md").read_text()
    for name in referenced:
        assert re.search(rf"create secret generic {name}\b", readme), f"deploy/README.md does not create {name}"
