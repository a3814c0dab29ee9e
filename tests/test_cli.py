"""The `outrider` command, run as a person would run it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from outrider.apikeys import tokens
from tests.support.servers import outrider_server


def outrider(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outrider", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "OUTRIDER_HOME": str(tmp_path / "home"),
        "OUTRIDER_SECRET_KEY": "cli-test",
    }


def test_users_and_keys_from_the_command_line_against_a_running_server(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    with outrider_server(cli_env, tmp_path / "home", tmp_path / "serve.log") as base_url:
        created = outrider(
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "long enough",
            "--admin",
            env=cli_env,
        )
        assert created.returncode == 0, created.stderr
        assert "as admin" in created.stderr

        made = outrider(
            "keys",
            "create",
            "--user",
            "ops@example.com",
            "--name",
            "deploy",
            "--scope",
            "tasks:read",
            "--expires-in-days",
            "7",
            env=cli_env,
        )
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert tokens.is_well_formed(key), "stdout holds only the key"

        me = httpx.get(f"{base_url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200
        assert me.json()["key"]["scopes"] == ["tasks:read"]

        listed = outrider("keys", "list", "--user", "ops@example.com", env=cli_env)
        assert "deploy" in listed.stdout and key[:8] in listed.stdout
        assert key not in listed.stdout
        key_id = me.json()["key"]["id"]

        assert outrider("keys", "revoke", key_id, env=cli_env).returncode == 0
        me = httpx.get(f"{base_url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 401
        again = outrider("keys", "revoke", key_id, env=cli_env)
        assert again.returncode == 1 and "No live API key" in again.stderr


def test_cli_errors_are_plain_messages(cli_env: dict[str, str]) -> None:
    unknown = outrider("keys", "create", "--user", "ghost@example.com", "--name", "x", env=cli_env)
    assert unknown.returncode == 1 and "No user with email ghost@example.com" in unknown.stderr
    weak = outrider(
        "users", "create", "--email", "a@example.com", "--password", "short", env=cli_env
    )
    assert weak.returncode == 1 and "at least 8 characters" in weak.stderr
    assert "Traceback" not in unknown.stderr + weak.stderr


def test_without_database_url_an_embedded_postgres_and_a_secret_are_made_in_home(
    tmp_path: Path,
) -> None:
    env = {"OUTRIDER_HOME": str(tmp_path / "home")}
    env_without_db = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "outrider", "migrate"],
        env={**env_without_db, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home" / "postgres" / "PG_VERSION").exists()
    secret = tmp_path / "home" / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    first = secret.read_text()
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "outrider",
            "users",
            "create",
            "--email",
            "a@example.com",
            "--password",
            "long enough",
        ],
        env={**env_without_db, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert secret.read_text() == first


def test_a_bad_setting_is_named_with_what_is_wrong(cli_env: dict[str, str]) -> None:
    result = outrider("migrate", env={**cli_env, "OUTRIDER_WEBHOOK_RETRY_SCHEDULE": "0,soon"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Invalid setting OUTRIDER_WEBHOOK_RETRY_SCHEDULE: not a duration: 'soon' "
        "(use e.g. 0, 5s, 5m, 2h)"
    )
    assert "Traceback" not in result.stderr


def test_a_bad_allowed_network_is_refused_at_start_up(cli_env: dict[str, str]) -> None:
    result = outrider("migrate", env={**cli_env, "OUTRIDER_ALLOWED_PRIVATE_CIDRS": "10.0.0.0/33"})
    assert result.returncode == 2
    assert result.stderr.startswith("Invalid setting OUTRIDER_ALLOWED_PRIVATE_CIDRS:")
