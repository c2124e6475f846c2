"""The tenant pod's init container, run for real with sh: it refuses to start without a
key in the Secret, and otherwise leaves keys the tenant's key store signs with."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY, find, pod_spec

SECRET_MOUNT = "/secrets/signing-keys"


def _run_init(secret_dir: Path, keys_dir: Path) -> subprocess.CompletedProcess[str]:
    (init,) = pod_spec(find("Deployment", "tenant"))["initContainers"]
    assert init["command"][:2] == ["sh", "-c"]
    script = init["command"][2].replace(SECRET_MOUNT, str(secret_dir))
    return subprocess.run(["sh", "-c", script], env={"PATH": "/usr/bin:/bin", "COMMERCE_KEYS_DIR": str(keys_dir)},
                          capture_output=True, text=True, timeout=10, check=False)


def test_tenant_pod_does_not_start_when_the_secret_holds_no_key(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    result = _run_init(secret, tmp_path / "run" / "keys")
    assert result.returncode != 0
    assert "commerce-signing-keys holds no *.pem key" in result.stderr
    assert not (tmp_path / "run" / "keys").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_key_made_as_the_readme_says_is_copied_privately_and_signs(tmp_path: Path) -> None:
    readme = (DEPLOY / "README.md").read_text()
    command = re.search(r"openssl genpkey .*?-out \"keys/\$\(date -u \+%Y%m%dT%H%M%S\)000000Z\.pem\"", readme,
                        re.DOTALL)
    assert command is not None, "deploy/README.md no longer shows how to make a key"
    secret = tmp_path / "secret"
    (secret / "..data").mkdir(parents=True)
    subprocess.run(["sh", "-c", command.group(0).replace("\\\n", " ").replace("keys/", f"{secret}/..data/")],
                   check=True, capture_output=True, timeout=30)
    (pem,) = (secret / "..data").glob("*.pem")
    # A mounted Secret shows each key as a symlink into its ..data folder.
    (secret / pem.name).symlink_to(Path("..data") / pem.name)

    keys = pytest.importorskip("services.tenant.keys", reason="the tenant service's key store is not written yet")
    keys_dir = tmp_path / "run" / "keys"
    result = _run_init(secret, keys_dir)
    assert result.returncode == 0, result.stderr
    copied = keys_dir / pem.name
    assert not copied.is_symlink()
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600
    store = keys.KeyStore(keys_dir)
    assert store.signing_key().path == copied
    assert store.ensure_key().path == copied  # the tenant's start finds it and makes no other
    assert [p.name for p in keys_dir.glob("*.pem")] == [pem.name]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_a_key_rotated_as_the_readme_says_is_published_at_once_and_signs_after_the_rollout(tmp_path: Path) -> None:
    readme = (DEPLOY / "README.md").read_text()
    section = readme[readme.index("## Rotating the signing key"):]
    command = re.search(r"openssl genpkey .*?\.pem\"", section, re.DOTALL)
    assert command is not None, "deploy/README.md no longer shows how to make a rotation key"
    keys = pytest.importorskip("services.tenant.keys")
    folder = tmp_path / "keys"
    old = keys.KeyStore(folder).ensure_key()
    subprocess.run(["sh", "-c", command.group(0).replace("\\\n", " ").replace("keys/", f"{folder}/")],
                   check=True, capture_output=True, timeout=30)
    now = time.time()
    store = keys.KeyStore(folder, reload_seconds=0, activation_seconds=40, clock=lambda: now)
    assert len(store.jwks()) == 2  # the new key is published by every pod once restarted ...
    assert store.signing_key().kid == old.kid  # ... but does not sign during the rollout
    later = keys.KeyStore(folder, reload_seconds=0, activation_seconds=40, clock=lambda: now + 11 * 60)
    assert later.signing_key().kid != old.kid
