"""No crash loses a delivery: the worker SIGKILLed mid-attempt, the message still arrives
(with the same webhook-id) once a worker is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.live import cli_account, own_database, task_env
from tests.support.model_server import ScriptedModel
from tests.support.receiver import Receiver
from tests.support.servers import KillableServer
from tests.webhooks.conftest import add_endpoint


async def test_a_worker_killed_mid_attempt_still_delivers_after_restart(
    database_url: str, tmp_path: Path, model: ScriptedModel, receiver: Receiver
) -> None:
    env = {
        **task_env(
            own_database(database_url, "outrider_webhook_kill"),
            model,
            OUTRIDER_WORKER_NAME="webhook-doomed",
        ),
        "OUTRIDER_HOME": str(tmp_path / "home"),
    }
    headers = cli_account(env, "w@example.com")
    # The first attempt hangs (past the kill); any later one is answered at once.
    url = receiver.respond("/hang", 200, failures=1, fail_delay=20)
    server = KillableServer(env)
    try:
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as api:
            await add_endpoint(api, url, ["task.created"])
            created = await api.post("/api/v1/tasks", json={"prompt": "Anything"})
            task_id = created.json()["taskId"]
            (first,) = await asyncio.to_thread(receiver.wait_for, "/hang", 1)
        server.kill()
        await asyncio.to_thread(server.start)
        # The dead worker's job is found stalled once its heartbeat lapses, and retried.
        second = (await asyncio.to_thread(receiver.wait_for, "/hang", 2, 60))[1]
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as api:
            for _ in range(50):
                (delivery,) = (
                    await api.get("/api/v1/webhooks/deliveries", params={"taskId": task_id})
                ).json()["deliveries"]
                if delivery["status"] != "pending":
                    break
                await asyncio.sleep(0.2)
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"][-1]["responseStatus"] == 200
    finally:
        server.stop()
