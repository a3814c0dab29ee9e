"""Server-sent events from the stored task event log, resumable by sequence number."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from outrider.events import service
from outrider.events.service import EventNotifier

HEARTBEAT_SECONDS = 15.0
_FINAL = ("error", "terminated")


def _frame(seq: int, kind: str, data: object) -> bytes:
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _task_status(
    sessions: async_sessionmaker[AsyncSession], task_id: uuid.UUID
) -> str | None:
    from outrider.tasks.models import Task

    async with sessions() as session:
        status = await session.scalar(select(Task.status).where(Task.id == task_id))
        return str(status.value) if status is not None else None


async def stream(
    request: Request, task_id: uuid.UUID, after: int, heartbeat: float = HEARTBEAT_SECONDS
) -> AsyncIterator[bytes]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    notifier: EventNotifier = request.app.state.notifier
    await notifier.start()
    last = after
    with notifier.subscribe(task_id) as wake:
        while not await request.is_disconnected():
            wake.clear()
            async with sessions() as session:
                batch = await service.read_after(session, task_id, last)
            for event in batch:
                last = event.seq
                yield _frame(event.seq, event.type, event.data)
            if batch:
                continue
            # Everything is sent: a task that can never change again ends the stream.
            status = await _task_status(sessions, task_id)
            if status is None or status in _FINAL:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), heartbeat)
                continue
            yield b": heartbeat\n\n"


def event_stream_response(request: Request, task_id: uuid.UUID, after: int) -> StreamingResponse:
    return StreamingResponse(
        stream(request, task_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
