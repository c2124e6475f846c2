"""RS256 signing keys kept as PEM files in ``settings.keys_dir``.

- The folder (mode 0700) holds one ``<UTC timestamp>.pem`` file (mode 0600) per
  key; the first start generates one when the folder has none. No key is ever
  stored in the repository.
- Every key in the folder is published in the JWKS, so tokens signed by an
  older key keep verifying until the operator removes its file (after the
  longest token lifetime).
- The newest key signs once it is ``activation_seconds`` old; until then the
  key before it goes on signing. A new key is thus in every verifier's JWKS
  (Envoy caches it for ``edge_jwks_cache_seconds``) before any token needs it,
  and a fresh token is never refused at the edge. A key's age comes from the
  UTC time in its file name (or, for a file named otherwise, its mtime).
  When no key is old enough (first start) the oldest one signs.
- Rotation = adding a key file (``python -m services.tenant rotate-key``).
  Running servers notice within ``reload_seconds``: the folder listing is
  compared at most that often and the keys reloaded when it changed.
- ``kid`` is the RFC 7638 JWK thumbprint of the public key.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = structlog.get_logger("commerce.tenant.keys")
_SUFFIX = ".pem"
_LOCK = ".lock"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(n: str, e: str) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an RSA public key given as base64url n and e."""
    # The required members in lexicographic order, no white space.
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


_STAMP = "%Y%m%dT%H%M%S%fZ"


def created_at(name: str, mtime: float) -> float:
    """When a key file was made: the UTC stamp ending its name, else its mtime."""
    stamp = name.removesuffix(_SUFFIX).rsplit("-", 1)[-1]
    try:
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return mtime


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    jwk: dict[str, str]
    path: Path
    created: float = 0.0

    @classmethod
    def from_private(cls, private_key: rsa.RSAPrivateKey, path: Path, created: float = 0.0) -> SigningKey:
        numbers = private_key.public_key().public_numbers()
        n, e = _b64(numbers.n), _b64(numbers.e)
        kid = thumbprint(n, e)
        jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e}
        return cls(kid, private_key, jwk, path, created)


class KeyStoreError(RuntimeError):
    pass


class KeyStore:
    def __init__(self, folder: Path, reload_seconds: float = 5.0, activation_seconds: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self._reload_seconds = reload_seconds
        self.activation_seconds = activation_seconds
        self._clock = clock
        self._checked_at = float("-inf")
        self._listing: tuple[tuple[str, int, int], ...] = ()
        self._keys: list[SigningKey] = []  # oldest first

    # --- reading ---------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The newest key that is old enough to sign (else the oldest key)."""
        keys = self._current()
        if not keys:
            raise KeyStoreError(f"no signing key in {self.folder}; start the tenant service or run rotate-key")
        now = self._clock()
        ready = [k for k in keys if now - k.created >= self.activation_seconds]
        return ready[-1] if ready else keys[0]

    def signs_from(self, key: SigningKey) -> float:
        """When ``key`` starts signing (epoch seconds), should no newer key be added."""
        return key.created + self.activation_seconds

    def jwks(self) -> list[dict[str, str]]:
        return [dict(k.jwk) for k in self._current()]

    def _current(self) -> list[SigningKey]:
        now = time.monotonic()
        if now - self._checked_at >= self._reload_seconds:
            self._checked_at = now
            listing = self._list()
            if listing != self._listing:
                self._keys = self._load(listing)
                self._listing = listing
        return self._keys

    def _list(self) -> tuple[tuple[str, int, int], ...]:
        try:
            entries = [e for e in os.scandir(self.folder) if e.name.endswith(_SUFFIX) and not e.name.startswith(".")]
        except FileNotFoundError:
            return ()
        return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries))

    def _load(self, listing: tuple[tuple[str, int, int], ...]) -> list[SigningKey]:
        keys: list[SigningKey] = []
        for name, mtime_ns, _ in listing:
            path = self.folder / name
            try:
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable key file", path=str(path), error=str(exc))
                continue
            if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
                log.warning("skipping key file: not an RSA key of at least 2048 bits", path=str(path))
                continue
            keys.append(SigningKey.from_private(private, path, created_at(name, mtime_ns / 1e9)))
        log.info("signing keys loaded", folder=str(self.folder), kids=[k.kid for k in keys])
        return keys

    # --- writing ---------------------------------------------------------------

    def ensure_key(self) -> SigningKey:
        """The signing key, generating the first one when the folder has none."""
        self._prepare_folder()
        with self._locked():
            if not self._list():
                self._write_new_key()
        self._checked_at = float("-inf")
        return self.signing_key()

    def add_key(self) -> SigningKey:
        """Generate a new key: published at once, signing from ``signs_from(key)``."""
        self._prepare_folder()
        with self._locked():
            path = self._write_new_key()
        self._checked_at = float("-inf")
        newest = self._current()[-1]
        if newest.path != path:
            raise KeyStoreError(f"{path.name} is not the newest key file in {self.folder}")
        return newest

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises key generation between processes sharing the folder."""
        fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_new_key(self) -> Path:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        stamp = datetime.now(UTC).strftime(_STAMP)
        newest = max((name for name, _, _ in self._list()), default="")
        name = f"{stamp}{_SUFFIX}"
        if name <= newest:  # clock went backwards: still sort after every existing key
            name = f"{newest.removesuffix(_SUFFIX)}-{stamp}{_SUFFIX}"
        path = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        log.info("signing key generated", path=str(path))
        return path
