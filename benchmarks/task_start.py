"""Time from POST /api/v1/tasks to the prompt accepted by the agent (status active),
beside the floor measured in the same run: the same clone and one OpenCode start,
session and prompt done directly, with no API, queue or database in between.

Usage: python -m benchmarks.task_start [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.git_server import git_server
from tests.support.model_server import scripted_model

from benchmarks._harness import scratch_database, server_process
from benchmarks.api_auth import free_port, make_key
from outrider.agents import opencode
from outrider.config import Settings
from outrider.sandbox.bubblewrap import BubblewrapProvider

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".outrider" / "tools"


async def direct_start(settings: Settings, root: Path, repo_url: str) -> float:
    """The floor: sandbox, clone, OpenCode healthy, session, prompt accepted."""
    started = time.perf_counter()
    provider = BubblewrapProvider(TOOLS, 4096, 512)
    sandbox = provider.create(root)
    result = await sandbox.run(["git", "clone", "--quiet", "--depth", "50", repo_url, "."])
    assert result.returncode == 0, result.stderr
    agent = await opencode.start(sandbox, settings, "scripted/m", timeout=60)
    try:
        session_id = await agent.client.create_session("bench")
        await agent.client.prompt(session_id, "hello", "scripted/m", "build")
        return time.perf_counter() - started
    finally:
        await agent.stop()


async def through_api(base_url: str, key: str, repo_url: str) -> float:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        started = time.perf_counter()
        created = await client.post("/api/v1/tasks", json={"prompt": "hello", "repoUrl": repo_url})
        task_id = created.json()["taskId"]
        # Polling is the measurement: the client sees "active" as soon as the API does.
        while (await client.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "creating":  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as scratch,
        scripted_model() as model,
        git_server(Path(scratch) / "git") as git,
        scratch_database() as url,
    ):
        repo_url = git.create_repo("bench", {"README.md": "# bench\n"})
        providers = {"scripted": {"baseUrl": model.base_url, "apiKey": "x", "models": ["m"]}}
        settings = Settings(
            home=Path(scratch) / "direct",
            providers=providers,
            tools=TOOLS,
        )
        direct = []
        for run in range(options.runs):
            direct.append(asyncio.run(direct_start(settings, Path(scratch) / f"d{run}", repo_url)))
            print(f"\r  direct start {run + 1}/{options.runs}", end="", flush=True)
        print()
        _, key = asyncio.run(make_key(url))
        port = free_port()
        env = {
            "DATABASE_URL": url,
            "OUTRIDER_SECRET_KEY": "bench",
            "OUTRIDER_LOG_LEVEL": "WARNING",
            "OUTRIDER_PROVIDERS": json.dumps(providers),
            "OUTRIDER_DEFAULT_MODEL": "scripted/m",
            "OUTRIDER_ALLOWED_PRIVATE_CIDRS": "127.0.0.0/8",
            "OUTRIDER_TOOLS": str(TOOLS),
            "OUTRIDER_HOME": str(Path(scratch) / "served"),
        }
        api = []
        with server_process(["-m", "outrider", "serve", "--port", str(port)], port, env) as base:
            for run in range(options.runs):
                api.append(asyncio.run(through_api(base, key, repo_url)))
                print(f"\r  through the API {run + 1}/{options.runs}", end="", flush=True)
        print()
    floor, ours = statistics.median(direct), statistics.median(api)
    print(f"POST -> prompt accepted (median of {options.runs}): {ours * 1000:7.0f} ms")
    print(f"floor: clone + OpenCode start + prompt:     {floor * 1000:7.0f} ms")
    print(f"ratio: {ours / floor:.2f}x the floor (overhead {1000 * (ours - floor):.0f} ms)")


if __name__ == "__main__":
    main()
