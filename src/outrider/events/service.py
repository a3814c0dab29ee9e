"""Append to and read from the task event log; wake readers with LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.events.models import TaskEvent
from outrider.models_common import utcnow

log = logging.getLogger(__name__)

CHANNEL = "task_events"


async def append(
    session: AsyncSession, task_id: uuid.UUID, events: Sequence[tuple[str, dict[str, Any]]]
) -> int:
    """Append events in order; returns the last sequence number. Wakes stream readers
    when the transaction commits (NOTIFY is transactional)."""
    if not events:
        return 0
    # One writer per task at a time, so sequence numbers are gap-free and monotonic.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"task_events:{task_id}"},
    )
    last = await session.scalar(
        select(func.coalesce(func.max(TaskEvent.seq), 0)).where(TaskEvent.task_id == task_id)
    )
    first = int(last or 0) + 1
    now = utcnow()
    await session.execute(
        insert(TaskEvent),
        [
            {
                "task_id": task_id,
                "seq": first + index,
                "type": kind,
                "data": data,
                "created_at": now,
            }
            for index, (kind, data) in enumerate(events)
        ],
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(task_id)}
    )
    return first + len(events) - 1


async def read_after(
    session: AsyncSession, task_id: uuid.UUID, after: int, limit: int = 500
) -> Sequence[TaskEvent]:
    result = await session.scalars(
        select(TaskEvent)
        .where(TaskEvent.task_id == task_id, TaskEvent.seq > after)
        .order_by(TaskEvent.seq)
        .limit(limit)
    )
    return result.all()


class EventNotifier:
    """One LISTEN connection per process, fanned out to the streams waiting on a task."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    # Anything that happened while (re)connecting: wake everyone to re-read.
                    self._wake_all()
                    async for notify in connection.notifies():
                        for waiter in self._waiters.get(notify.payload, ()):
                            waiter.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def subscribe(self, task_id: uuid.UUID) -> Any:
        waiter = asyncio.Event()
        key = str(task_id)
        self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter
        finally:
            self._waiters[key].discard(waiter)
            if not self._waiters[key]:
                del self._waiters[key]
