"""Tasks end to end: the HTTP API, the worker, bubblewrap, git and the real OpenCode."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.git_server import GitServer
from tests.support.live import (
    cli_account,
    own_database,
    read_events,
    task_env,
    wait_for_status,
)
from tests.support.model_server import ScriptedModel
from tests.support.servers import KillableServer, outrider_server


@pytest.fixture
async def api(live: str, make_account: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live, headers=account.headers, timeout=30) as client:
        yield client


async def test_a_task_writes_runs_and_commits_then_completes(
    api: httpx.AsyncClient, git: GitServer, outrider_home: Path
) -> None:
    repo_url = git.create_repo("widgets", {"README.md": "# widgets\n"})
    created = await api.post(
        "/api/v1/tasks",
        json={
            "prompt": "Add a greeting file [[write-commit]]",
            "repoUrl": repo_url,
            "branch": "outrider/greeting",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    task_id = body["taskId"]
    assert body["status"] == "creating"
    assert created.headers["location"] == f"/api/v1/tasks/{task_id}"

    task = await wait_for_status(api, task_id, {"completed", "error"})
    assert task["status"] == "completed", task
    assert task["summary"] == "All done: wrote hello.txt and committed it."
    assert task["usage"]["inputTokens"] == 300 and task["usage"]["outputTokens"] == 30
    assert task["completedAt"] is not None
    assert task["title"] == "Add a greeting file [[write-commit]]"

    clone = outrider_home / "sandboxes" / task_id / "repo"
    log = subprocess.run(
        ["git", "log", "--format=%s", "-2"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert log[:2] == ["Add hello.txt", "initial"]
    branch = subprocess.run(
        ["git", "branch", "--show-current"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert branch == "outrider/greeting"
    assert (clone / "hello.txt").read_text() == "hello from outrider\n"

    # The whole story is replayable from the stored log, from the start ...
    frames = await read_events(api, task_id, until_status="completed")
    seqs = [seq for seq, _, _ in frames]
    assert seqs == list(range(1, len(seqs) + 1))
    statuses = [data["status"] for _, kind, data in frames if kind == "task.status"]
    assert statuses == ["creating", "active", "completed"]
    kinds = {kind for _, kind, _ in frames}
    assert {"message.updated", "message.part.updated", "session.idle"} <= kinds
    tools = {
        data["properties"]["part"].get("tool")
        for _, kind, data in frames
        if kind == "message.part.updated"
    }
    assert {"write", "bash"} <= tools
    # ... and from a Last-Event-ID, which resumes right after it.
    middle = seqs[len(seqs) // 2]
    resumed = await read_events(
        api, task_id, headers={"Last-Event-ID": str(middle)}, until_status="completed"
    )
    assert [seq for seq, _, _ in resumed] == seqs[seqs.index(middle) + 1 :]
    after = await read_events(api, task_id, params={"after": str(middle)}, until_status="completed")
    assert after == resumed

    conversation = (await api.get(f"/api/v1/tasks/{task_id}/messages")).json()
    assert conversation[0]["role"] == "user"
    assert conversation[0]["text"] == "Add a greeting file [[write-commit]]"
    assert conversation[-1]["role"] == "assistant"
    assert "All done" in conversation[-1]["text"]


async def test_a_model_error_ends_the_task_in_error_with_its_message(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Break [[fail-400]]"})
    task = await wait_for_status(api, created.json()["taskId"], {"completed", "error"})
    assert task["status"] == "error"
    assert "scripted failure 400" in task["error"]


async def test_a_model_retrying_forever_hits_the_deadline(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Loop [[retry-500]]"})
    task = await wait_for_status(api, created.json()["taskId"], {"completed", "error"}, timeout=120)
    assert task["status"] == "error"
    assert "deadline" in task["error"] and "OUTRIDER_TASK_TIMEOUT" in task["error"]


async def test_a_follow_up_sent_while_busy_is_delivered_after(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Work [[slow]]"})
    task_id = created.json()["taskId"]
    await wait_for_status(api, task_id, {"active"})
    follow = await api.post(f"/api/v1/tasks/{task_id}/messages", json={"text": "and then this"})
    assert follow.status_code == 202, follow.text
    assert follow.json()["queued"] == 1
    task = await wait_for_status(api, task_id, {"completed", "error"})
    assert task["status"] == "completed", task
    assert task["summary"] == "Done: and then this"
    texts = [m["text"].strip() for m in (await api.get(f"/api/v1/tasks/{task_id}/messages")).json()]
    assert texts.index("Work [[slow]]") < texts.index("Finished the slow work.")
    assert texts.index("Finished the slow work.") < texts.index("and then this")

    # A completed task takes a follow-up and becomes active again.
    again = await api.post(f"/api/v1/tasks/{task_id}/messages", json={"text": "one more"})
    assert again.status_code == 202 and again.json()["status"] == "active"
    task = await wait_for_status(api, task_id, {"completed", "error"})
    assert task["summary"] == "Done: one more"


async def test_stop_terminates_and_delete_removes_the_sandbox(
    api: httpx.AsyncClient, outrider_home: Path
) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Work [[slow]]"})
    task_id = created.json()["taskId"]
    await wait_for_status(api, task_id, {"active"})
    stopped = await api.post(f"/api/v1/tasks/{task_id}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "terminated"
    assert (await api.post(f"/api/v1/tasks/{task_id}/stop")).status_code == 409
    follow = await api.post(f"/api/v1/tasks/{task_id}/messages", json={"text": "hi"})
    assert follow.status_code == 409 and follow.json()["code"] == "task_terminated"
    sandbox = outrider_home / "sandboxes" / task_id
    assert sandbox.exists()

    deleted = await api.delete(f"/api/v1/tasks/{task_id}")
    assert deleted.json() == {"success": True}
    assert (await api.get(f"/api/v1/tasks/{task_id}")).status_code == 404
    for _ in range(100):
        if not sandbox.exists():
            break
        await asyncio.sleep(0.1)
    assert not sandbox.exists()


async def test_cloning_a_missing_repository_errors_clearly(
    api: httpx.AsyncClient, git: GitServer
) -> None:
    created = await api.post(
        "/api/v1/tasks", json={"prompt": "Anything", "repoUrl": f"{git.base_url}/missing.git"}
    )
    task = await wait_for_status(api, created.json()["taskId"], {"completed", "error"})
    assert task["status"] == "error"
    assert task["error"] == "git clone failed: repository not found"


async def test_a_worker_killed_mid_task_leaves_no_task_unresolved(
    database_url: str, tmp_path: Path, model: ScriptedModel
) -> None:
    own_url = own_database(database_url, "outrider_kill")
    home = tmp_path / "home"
    env = {
        **os.environ,
        **task_env(own_url, model, OUTRIDER_WORKER_NAME="doomed"),
        "OUTRIDER_HOME": str(home),
    }
    headers = cli_account(env, "k@example.com")
    server = KillableServer(env)
    try:
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            created = await client.post("/api/v1/tasks", json={"prompt": "Work [[slow]]"})
            task_id = created.json()["taskId"]
            await wait_for_status(client, task_id, {"active"})
        server.kill()  # the worker, its OpenCode and sandbox
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            task = await wait_for_status(client, task_id, {"completed", "error"}, timeout=60)
        assert task["status"] == "error"
        assert "worker running this task stopped" in task["error"]
    finally:
        server.stop()


async def test_the_agent_cannot_write_outside_the_repository(
    api: httpx.AsyncClient, outrider_home: Path
) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Escape [[outside]]"})
    task_id = created.json()["taskId"]
    task = await wait_for_status(api, task_id, {"completed", "error"})
    assert task["status"] == "completed", task
    assert task["summary"] == "Could not write outside the repository."
    sandbox = outrider_home / "sandboxes" / task_id
    assert not (sandbox / "home" / "outside.txt").exists()
    frames = await read_events(api, task_id, until_status="completed")
    write_states = [
        data["properties"]["part"]["state"]["status"]
        for _, kind, data in frames
        if kind == "message.part.updated" and data["properties"]["part"].get("tool") == "write"
    ]
    assert write_states[-1] == "error"


async def test_unsandboxed_mode_runs_tasks_and_the_reaper_removes_idle_sandboxes(
    database_url: str, tmp_path: Path, model: ScriptedModel, git: GitServer
) -> None:
    """OUTRIDER_SANDBOX=none works without bubblewrap's paths; OUTRIDER_SANDBOX_TTL reaps."""
    home = tmp_path / "home"
    env = {
        **task_env(
            own_database(database_url, "outrider_unsandboxed"),
            model,
            OUTRIDER_SANDBOX="none",
            OUTRIDER_SANDBOX_TTL="6",
            OUTRIDER_WORKER_NAME="unsandboxed",
        ),
        "OUTRIDER_HOME": str(home),
    }
    headers = cli_account(env, "u@example.com")
    repo_url = git.create_repo("unsandboxed", {"README.md": "# u\n"})
    with outrider_server(env, home, tmp_path / "serve.log") as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            created = await client.post(
                "/api/v1/tasks", json={"prompt": "Greet [[write-commit]]", "repoUrl": repo_url}
            )
            task_id = created.json()["taskId"]
            task = await wait_for_status(client, task_id, {"completed", "error"})
            assert task["status"] == "completed", task
            sandbox = home / "sandboxes" / task_id
            clone = sandbox / "repo"
            assert (clone / "hello.txt").read_text() == "hello from outrider\n"
            subject = subprocess.run(
                ["git", "log", "--format=%s", "-1"],
                cwd=clone,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert subject == "Add hello.txt"

            # Past its TTL the reaper (every 15 s) removes the sandbox; the task stays.
            for _ in range(80):
                if not sandbox.exists():
                    break
                await asyncio.sleep(0.5)
            assert not sandbox.exists(), "the reaper left the sandbox past its TTL"
            assert (await client.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "completed"
            # A follow-up can no longer resume it, and says why.
            sent = await client.post(f"/api/v1/tasks/{task_id}/messages", json={"text": "More"})
            assert sent.status_code == 202, sent.text
            task = await wait_for_status(client, task_id, {"error"})
            assert "sandbox is gone" in task["error"]
