"""The procrastinate app: one job queue on the same PostgreSQL, deferred in-transaction."""

from __future__ import annotations

import socket
from typing import Any

import procrastinate
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.config import Settings

PROVISION_QUEUE = "provision"

# Jobs register on this app; a process binds it to its database with `connected_app`.
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=["outrider.worker.jobs", "outrider.webhooks.jobs"],
)


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def connection_pool(sqlalchemy_url: str, size: int) -> AsyncConnectionPool:
    """A pool for the worker's `app.open_async(pool)`: procrastinate's periodic deferrer
    works on the module-level app, so that app itself is opened, on this pool."""
    return AsyncConnectionPool(
        libpq_url(sqlalchemy_url),
        min_size=1,
        max_size=size,
        open=False,
        check=AsyncConnectionPool.check_connection,
    )


def worker_name() -> str:
    return socket.gethostname()


def sandbox_queue(settings: Settings) -> str:
    """The queue of jobs that touch sandboxes living on this machine."""
    return f"sandbox.{settings.worker_name or worker_name()}"


async def raw_connection(session: AsyncSession) -> Any:
    """The session's own psycopg connection, so a job commits or rolls back with it."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
