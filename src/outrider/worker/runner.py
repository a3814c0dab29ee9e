"""Run a worker: the procrastinate worker with our runtime, in this process."""

from __future__ import annotations

import logging

from outrider.config import Settings
from outrider.db import create_engine, sessionmaker
from outrider.worker import jobs, runtime
from outrider.worker.app import PROVISION_QUEUE, app, connection_pool, sandbox_queue

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, url: str) -> None:
    engine = create_engine(url, pool_size=settings.worker_concurrency + 2)
    queue = sandbox_queue(settings)
    runtime.install(
        runtime.WorkerRuntime(
            settings=settings,
            engine=engine,
            sessions=sessionmaker(engine),
            sandboxes=runtime.sandbox_provider(settings),
            queue=queue,
        )
    )
    pool = connection_pool(url, settings.worker_concurrency + 4)
    await pool.open()
    procrastinate_app = app
    try:
        async with procrastinate_app.open_async(pool):
            # Resolve what a previous life of this worker (or a dead peer) left behind.
            await jobs.reap_now(procrastinate_app.job_manager)
            log.info("worker started", extra={"queues": [PROVISION_QUEUE, queue]})
            await procrastinate_app.run_worker_async(
                queues=[PROVISION_QUEUE, queue],
                concurrency=settings.worker_concurrency,
                install_signal_handlers=False,
                update_heartbeat_interval=5,
                stalled_worker_timeout=15,
                shutdown_graceful_timeout=10,
            )
    finally:
        await pool.close()
        await engine.dispose()
