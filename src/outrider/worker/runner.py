"""Run a worker: the procrastinate worker with our runtime, in this process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from outrider.config import Settings
from outrider.db import create_engine, sessionmaker
from outrider.webhooks.service import WEBHOOK_QUEUE
from outrider.worker import jobs, runtime
from outrider.worker.app import PROVISION_QUEUE, app, connection_pool, sandbox_queue

log = logging.getLogger(__name__)

_WORKER_OPTIONS: dict[str, Any] = {
    "install_signal_handlers": False,
    "update_heartbeat_interval": 5,
    "stalled_worker_timeout": 15,
    "shutdown_graceful_timeout": 10,
}


async def run_worker(settings: Settings, url: str) -> None:
    # Agent jobs and deliveries each hold a session; deliveries also hold a slot lock.
    engine = create_engine(
        url, pool_size=settings.worker_concurrency + 2 * settings.webhook_concurrency + 2
    )
    queue = sandbox_queue(settings)
    runtime.install(
        runtime.WorkerRuntime(
            settings=settings,
            engine=engine,
            sessions=sessionmaker(engine),
            sandboxes=runtime.sandbox_provider(settings),
            queue=queue,
            http=httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
            ),
        )
    )
    pool = connection_pool(url, settings.worker_concurrency + settings.webhook_concurrency + 4)
    await pool.open()
    procrastinate_app = app
    try:
        async with procrastinate_app.open_async(pool):
            # Resolve what a previous life of this worker (or a dead peer) left behind.
            await jobs.reap_now(procrastinate_app.job_manager)
            log.info("worker started", extra={"queues": [PROVISION_QUEUE, queue, WEBHOOK_QUEUE]})
            # Two workers: an agent job holds its slot for the agent's whole run, so
            # deliveries get slots of their own and never wait behind agents.
            await asyncio.gather(
                procrastinate_app.run_worker_async(
                    queues=[PROVISION_QUEUE, queue],
                    concurrency=settings.worker_concurrency,
                    name="agents",
                    **_WORKER_OPTIONS,
                ),
                procrastinate_app.run_worker_async(
                    queues=[WEBHOOK_QUEUE],
                    concurrency=settings.webhook_concurrency,
                    name="webhooks",
                    # A retry is a job scheduled for later, which no NOTIFY announces when
                    # it falls due: poll often so it leaves on time.
                    fetch_job_polling_interval=0.2,
                    delete_jobs="successful",
                    **_WORKER_OPTIONS,
                ),
            )
    finally:
        await runtime.current().http.aclose()
        await pool.close()
        await engine.dispose()
