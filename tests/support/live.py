"""A live Outrider (API and worker) with the real OpenCode in bubblewrap, a scripted model,
a git smart-HTTP server and a webhook receiver, all on loopback; and helpers to drive it.
The fixtures are registered by tests/conftest.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.git_server import GitServer, git_server
from tests.support.model_server import ScriptedModel, scripted_model
from tests.support.receiver import Receiver, webhook_receiver
from tests.support.servers import outrider_server

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".outrider" / "tools"


@pytest.fixture(scope="session")
def model() -> Iterator[ScriptedModel]:
    with scripted_model() as model:
        yield model


@pytest.fixture(scope="session")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with git_server(tmp_path_factory.mktemp("git")) as server:
        yield server


def task_env(database_url: str, model: ScriptedModel, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "OUTRIDER_SECRET_KEY": "task-tests",
        "OUTRIDER_PROVIDERS": json.dumps(
            {"scripted": {"baseUrl": model.base_url, "apiKey": "test", "models": ["m"]}}
        ),
        "OUTRIDER_DEFAULT_MODEL": "scripted/m",
        # Test settings only: the model and git servers live on loopback.
        "OUTRIDER_ALLOWED_PRIVATE_CIDRS": "127.0.0.0/8",
        "OUTRIDER_TOOLS": str(TOOLS),
        "OUTRIDER_WORKER_NAME": "test-worker",
        "OUTRIDER_WEBHOOK_RETRY_SCHEDULE": "0,1s,2s",
        "OUTRIDER_WEBHOOK_TIMEOUT": "5",
    }
    env.update(extra)
    return env


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def outrider_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outrider-home")


@pytest.fixture(scope="session")
def live(database_url: str, model: ScriptedModel, outrider_home: Path) -> Iterator[str]:
    env = task_env(database_url, model, OUTRIDER_TASK_TIMEOUT="25")
    with outrider_server(env, outrider_home, outrider_home / "serve.log") as base_url:
        yield base_url


async def wait_for_status(
    client: httpx.AsyncClient, task_id: str, statuses: set[str], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task stayed {body['status']}: {body}")
        await asyncio.sleep(0.25)


async def read_events(
    client: httpx.AsyncClient,
    task_id: str,
    headers: dict[str, str] | None = None,
    until_status: str | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 30,
) -> list[tuple[int, str, dict[str, Any]]]:
    """SSE frames (id, event, data) until the stream ends or `until_status` is seen."""
    frames: list[tuple[int, str, dict[str, Any]]] = []
    async with (
        asyncio.timeout(timeout),
        client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", headers=headers, params=params
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                current[name] = value
                continue
            if current:
                frames.append((int(current["id"]), current["event"], json.loads(current["data"])))
                data = frames[-1][2]
                current = {}
                if (
                    until_status
                    and frames[-1][1] == "task.status"
                    and data["status"] == until_status
                ):
                    break
    return frames


def own_database(database_url: str, name: str) -> str:
    """A fresh database beside the shared one, so no other test's worker takes its jobs."""
    location, _, query = database_url.partition("?")
    admin = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{location.rsplit('/', 1)[0]}/{name}?{query}"


def cli_account(env: dict[str, str], email: str) -> dict[str, str]:
    """A user and API key made through the CLI (which migrates an empty database first)."""
    full_env = {**os.environ, **env}
    outrider = [sys.executable, "-m", "outrider"]
    create_user = ["users", "create", "--email", email, "--password", "long enough"]
    subprocess.run([*outrider, *create_user], env=full_env, check=True, capture_output=True)
    key = subprocess.run(
        [*outrider, "keys", "create", "--user", email, "--name", "tests"],
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"Authorization": f"Bearer {key}"}
