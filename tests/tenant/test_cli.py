"""The operator commands, run as a user would: `python -m services.tenant
create-admin` and `rotate-key`, against the test PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from services.devmesh.postgres import Postgres
from services.runtime.settings import Settings
from tests.tenant.harness import Client, make_settings, start_tenant

PREFIX = "tt6"
ROOT = Path(__file__).resolve().parents[2]
EMAIL = "ops@platform.example"


@dataclass
class Cli:
    settings: Settings
    env: dict[str, str]

    async def run(self, *args: str, **env: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.tenant", *args, cwd=ROOT, env={**self.env, **env},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def cli(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cli]:
    tmp = tmp_path_factory.mktemp(PREFIX)
    settings = make_settings(postgres.url, PREFIX, tmp)
    env = {**os.environ, "DATABASE_URL": postgres.url, "COMMERCE_DATABASE_PREFIX": PREFIX,
           "COMMERCE_KEYS_DIR": str(settings.keys_dir), "COMMERCE_LOG_LEVEL": "WARNING"}
    yield Cli(settings, env)


async def _can_log_in(settings: Settings, password: str) -> bool:
    running = await start_tenant(settings)
    client = Client(running.port)
    try:
        await client.login("platform", EMAIL, password)
        return True
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        return False
    finally:
        await client.close()
        await running.stop(0)


async def test_create_admin_creates_the_platform_admin_once(cli: Cli) -> None:
    code, out, err = await cli.run("create-admin", "--email", EMAIL.upper(), "--password-env", "PW",
                                   PW="first-password-1")
    assert code == 0, err
    assert f"platform admin {EMAIL} created" in out
    assert await _can_log_in(cli.settings, "first-password-1")

    code, out, _ = await cli.run("create-admin", "--email", EMAIL, "--password-env", "PW", PW="second-password")
    assert code == 0
    assert "already exists; password unchanged" in out
    assert not await _can_log_in(cli.settings, "second-password")

    code, out, _ = await cli.run("create-admin", "--email", EMAIL, "--password-env", "PW", "--reset",
                                 PW="second-password")
    assert code == 0
    assert "password reset" in out
    assert await _can_log_in(cli.settings, "second-password")


async def test_create_admin_refuses_a_short_password_or_a_missing_variable(cli: Cli) -> None:
    code, _, err = await cli.run("create-admin", "--email", "new@platform.example", "--password-env", "PW", PW="short")
    assert code == 2 and "password" in err
    code, _, err = await cli.run("create-admin", "--email", "new@platform.example", "--password-env", "UNSET_VAR")
    assert code != 0 and "UNSET_VAR" in err
    code, _, err = await cli.run("create-admin", "--email", "not-an-email", "--password-env", "PW",
                                 PW="long-enough-pw")
    assert code == 2 and "email" in err


async def test_rotate_key_adds_a_signing_key(cli: Cli) -> None:
    before = set(cli.settings.keys_dir.glob("*.pem"))
    code, out, err = await cli.run("rotate-key")
    assert code == 0, err
    after = set(cli.settings.keys_dir.glob("*.pem"))
    assert len(after - before) == 1
    assert "new signing key" in out
