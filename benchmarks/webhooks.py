"""Webhook deliveries a second through the whole path (the outbox row written with the
status change, the procrastinate job, signing, the egress-guarded connection, the
attempt recorded), beside the ceiling of plain signed httpx POSTs to the same receiver
in the same run, as a ratio; and the status-change-to-receipt latency, p50 and p99.

Usage: python -m benchmarks.webhooks [--messages 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks._harness import REPO, scratch_database
from benchmarks.api_auth import free_port
from outrider.accounts import service as accounts
from outrider.config import ProviderConfig, Settings
from outrider.db import create_engine, sessionmaker
from outrider.tasks import service as tasks
from outrider.tasks.models import TaskStatus
from outrider.tasks.schemas import TaskCreate
from outrider.webhooks import service as webhooks
from outrider.webhooks.jobs import signature_header
from outrider.webhooks.schemas import EndpointCreate

SETTINGS = Settings(
    providers={"bench": ProviderConfig(base_url="http://127.0.0.1:9/v1", models=["m"])},
    default_model="bench/m",
    secret_key="bench",
    allowed_private_cidrs="127.0.0.0/8",
)


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r  {label:<26} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="")
    if done >= total:
        print()


async def stats(receiver: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        found: dict[str, float] = (await client.get(f"{receiver}/stats")).json()
        return found


async def ceiling(receiver: str, messages: int, concurrency: int) -> float:
    """Plain signed POSTs, as fast as httpx sends them: the floor of any delivery path."""
    secret = webhooks.new_secret()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(messages):
        queue.put_nowait(index)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def sender() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                body = json.dumps({"type": "task.completed", "taskId": f"ceiling-{index}"})
                message_id = f"msg_{uuid.uuid4().hex}"
                moment = datetime.now(UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": message_id,
                    "webhook-timestamp": str(int(moment.timestamp())),
                    "webhook-signature": signature_header([secret], message_id, moment, body),
                }
                response = await client.post(f"{receiver}/ceiling", content=body, headers=headers)
                assert response.status_code == 204

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return messages / (time.perf_counter() - started)


async def prepare(url: str, receiver: str) -> uuid.UUID:
    """A user with an endpoint for task.completed on the receiver."""
    engine = create_engine(url, pool_size=1)
    async with sessionmaker(engine)() as session, session.begin():
        assert isinstance(session, AsyncSession)
        user = await accounts.create_user(session, "bench@example.com", "benchmark password")
        await webhooks.create_endpoint(
            session,
            SETTINGS,
            user.id,
            EndpointCreate.model_validate(
                {"url": f"{receiver}/hook", "events": ["task.completed"]}
            ),
        )
    await engine.dispose()
    return user.id


async def write_tasks(url: str, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """Tasks waiting to complete, written just before their phase: a task left in
    creating with no agent job is resolved by the reaper after 10 s."""
    engine = create_engine(url, pool_size=1)
    task_ids = []
    for index in range(count):
        async with sessionmaker(engine)() as session, session.begin():
            task = await tasks.create_task(session, SETTINGS, user_id, TaskCreate(prompt="p"), None)
            task_ids.append(task.id)
        if index % 50 == 0:
            progress("tasks written", index, count)
    progress("tasks written", count, count)
    await engine.dispose()
    return task_ids


async def complete_all(
    url: str,
    receiver: str,
    task_ids: list[uuid.UUID],
    per_second: float | None,
    label: str,
    worker: subprocess.Popen[bytes] | None = None,
) -> tuple[float, list[float]]:
    """Complete the tasks (all at once, or paced), wait for every message; returns the
    deliveries a second from the first change to the last receipt, and each message's
    status-change-to-receipt latency in ms."""
    engine = create_engine(url, pool_size=20)
    make = sessionmaker(engine)
    changed_at: dict[str, float] = {}
    semaphore = asyncio.Semaphore(16)

    async def complete(task_id: uuid.UUID) -> None:
        async with semaphore, make() as session:
            async with session.begin():
                await tasks.transition(
                    session, task_id, [TaskStatus.creating], TaskStatus.completed, summary="ok"
                )
            changed_at[str(task_id)] = time.time()

    started = time.time()
    running = []
    for index, task_id in enumerate(task_ids):
        running.append(asyncio.create_task(complete(task_id)))
        if per_second:
            await asyncio.sleep(max(0.0, started + (index + 1) / per_second - time.time()))
    await asyncio.gather(*running)
    if worker is not None:
        # The outbox is full and the worker was paused: from here on, only delivery runs.
        started = time.time()
        worker.send_signal(signal.SIGCONT)
    arrived: dict[str, float] = {}
    while len(arrived) < len(task_ids):
        arrived = {k: v for k, v in (await stats(receiver)).items() if k in changed_at}
        progress(label, len(arrived), len(task_ids))
        if len(arrived) < len(task_ids):
            await asyncio.sleep(0.1)
    await engine.dispose()
    rate = len(task_ids) / (max(arrived.values()) - started)
    return rate, [1000 * (arrived[k] - changed_at[k]) for k in arrived]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paced", type=int, default=150, help="messages for the latency run")
    parser.add_argument("--rate", type=float, default=25, help="status changes/s, latency run")
    options = parser.parse_args()
    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    listener = subprocess.Popen([sys.executable, "-m", "benchmarks._receiver", str(port)], cwd=REPO)
    print("Starting a scratch PostgreSQL and a worker…")
    try:
        with scratch_database() as url:
            env = {
                "DATABASE_URL": url,
                "OUTRIDER_SECRET_KEY": "bench",
                "OUTRIDER_LOG_LEVEL": "WARNING",
                "OUTRIDER_ALLOWED_PRIVATE_CIDRS": "127.0.0.0/8",
                "OUTRIDER_WEBHOOK_CONCURRENCY": str(options.concurrency),
                "OUTRIDER_WEBHOOK_ENDPOINT_CONCURRENCY": str(options.concurrency),
                "OUTRIDER_HOME": str(REPO / ".outrider" / "bench-webhooks"),
            }
            worker = subprocess.Popen(
                [sys.executable, "-m", "outrider", "worker"],
                env={**os.environ, **env},
                cwd=REPO,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(3)  # the worker connects and starts listening
                ceiling_rate = asyncio.run(ceiling(receiver, options.messages, options.concurrency))
                count = options.messages
                user_id = asyncio.run(prepare(url, receiver))
                burst = asyncio.run(write_tasks(url, user_id, count))
                rate, burst_latencies = asyncio.run(
                    complete_all(url, receiver, burst, None, "burst delivered")
                )
                worker.send_signal(signal.SIGSTOP)
                drain = asyncio.run(write_tasks(url, user_id, count))
                drain_rate, _ = asyncio.run(
                    complete_all(url, receiver, drain, None, "drain delivered", worker)
                )
                paced = asyncio.run(write_tasks(url, user_id, options.paced))
                _, latencies = asyncio.run(
                    complete_all(url, receiver, paced, options.rate, "paced delivered")
                )
            finally:
                worker.terminate()
                worker.wait(20)
    finally:
        listener.terminate()
    paced_q = statistics.quantiles(latencies, n=100)
    burst_q = statistics.quantiles(burst_latencies, n=100)
    print(f"burst of {options.messages}, concurrency {options.concurrency} (per receiver too)")
    print(f"whole path:                  {rate:8.0f} deliveries/s")
    print(f"ceiling, signed httpx POSTs: {ceiling_rate:8.0f} requests/s")
    print(f"ratio: {rate / ceiling_rate:.2f}x the ceiling")
    print(
        f"delivery side alone (outbox already written): {drain_rate:6.0f} deliveries/s, "
        f"{drain_rate / ceiling_rate:.2f}x the ceiling"
    )
    print(
        f"status change -> receipt at {options.rate:.0f}/s: "
        f"p50 {paced_q[49]:7.1f} ms   p99 {paced_q[98]:7.1f} ms"
    )
    print(
        f"status change -> receipt in the burst: "
        f"p50 {burst_q[49]:7.1f} ms   p99 {burst_q[98]:7.1f} ms (queueing included)"
    )


if __name__ == "__main__":
    main()
