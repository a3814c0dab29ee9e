"""/api/v1/tasks: create, read, list, follow up, stream, stop, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from outrider.apikeys.dependencies import require_scope
from outrider.apikeys.schemas import Scope
from outrider.apikeys.service import Principal
from outrider.config import app_settings
from outrider.db import SessionDep
from outrider.errors import ApiError
from outrider.events.api import event_stream_response
from outrider.sandbox.base import SandboxUnavailable
from outrider.tasks import service
from outrider.tasks.models import TaskStatus
from outrider.tasks.schemas import (
    MessageAccepted,
    MessageCreate,
    MessageRead,
    TaskCreate,
    TaskCreated,
    TaskList,
    TaskRead,
)
from outrider.worker import jobs
from outrider.worker.app import raw_connection
from outrider.worker.runtime import sandbox_provider

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])
Reader = Annotated[Principal, Depends(require_scope(Scope.tasks_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.tasks_write))]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Invalid request",
        "content": {
            "application/json": {
                "example": {"error": "model: unknown provider 'x'", "code": "unknown_provider"}
            }
        },
    },
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such task (or another user's)"},
}


@router.post("", status_code=201, response_model=TaskCreated, responses=ERRORS)
async def create_task(
    body: TaskCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Create a task: the agent is provisioned in a sandbox and sent the prompt.

    With an `Idempotency-Key` header, repeating the same request within 24 h answers the
    first response again (nothing new is created)."""
    if idempotency_key:
        replay = await service.find_idempotent_replay(
            session, principal.user.id, idempotency_key, body
        )
        if replay:
            return JSONResponse(
                replay.body,
                status_code=replay.status_code,
                headers={
                    "Location": f"/api/v1/tasks/{replay.task_id}",
                    "Idempotent-Replayed": "true",
                },
            )
    settings = app_settings(request)
    try:
        sandbox_provider(settings).check()
    except SandboxUnavailable as error:
        raise ApiError(503, "sandbox_unavailable", str(error)) from error
    task = await service.create_task(session, settings, principal.user.id, body, idempotency_key)
    # Same transaction as the task row: both commit, or neither does.
    await jobs.run_agent.configure(connection=await raw_connection(session)).defer_async(
        task_id=str(task.id)
    )
    return JSONResponse(
        service.created_body(task),
        status_code=201,
        headers={"Location": f"/api/v1/tasks/{task.id}"},
    )


@router.get("", response_model=TaskList)
async def list_tasks(
    session: SessionDep,
    principal: Reader,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> TaskList:
    """Your tasks, newest first. Pass `nextCursor` back as `cursor` for the next page."""
    page, next_cursor = await service.list_for_user(
        session, principal.user.id, status, limit, cursor
    )
    return TaskList(tasks=[service.to_read(task) for task in page], next_cursor=next_cursor)


@router.get("/{task_id}", response_model=TaskRead, responses=ERRORS)
async def get_task(task_id: uuid.UUID, session: SessionDep, principal: Reader) -> TaskRead:
    return service.to_read(await service.get_for_user(session, principal.user.id, task_id))


@router.post(
    "/{task_id}/messages", status_code=202, response_model=MessageAccepted, responses=ERRORS
)
async def send_message(
    task_id: uuid.UUID,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    principal: Writer,
) -> MessageAccepted:
    """Send a follow-up. While the agent is busy it queues; a completed task resumes."""
    task, queued, resume = await service.queue_message(
        session, principal.user.id, task_id, body.text, body.model, app_settings(request)
    )
    if resume:
        await jobs.run_agent.configure(
            connection=await raw_connection(session), queue=task.worker_queue
        ).defer_async(task_id=str(task.id))
    return MessageAccepted(task_id=task.id, status=task.status, queued=queued)


@router.get("/{task_id}/messages", response_model=list[MessageRead], responses=ERRORS)
async def list_messages(
    task_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
) -> list[MessageRead]:
    """The conversation so far, as the agent recorded it."""
    task = await service.get_for_user(session, principal.user.id, task_id)
    return service.conversation(task)


@router.get("/{task_id}/events", responses=ERRORS, response_class=StreamingResponse)
async def stream_events(
    task_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Reader,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: agent events as OpenCode emits them, and `task.status`.

    Each event has `id: <seq>`; reconnect with `Last-Event-ID` (or `?after=`) to resume."""
    await service.get_for_user(session, principal.user.id, task_id)
    start = after or 0
    if last_event_id and last_event_id.isdigit():
        start = int(last_event_id)
    return event_stream_response(request, task_id, start)


@router.post("/{task_id}/stop", response_model=TaskRead, responses=ERRORS)
async def stop_task(task_id: uuid.UUID, session: SessionDep, principal: Writer) -> TaskRead:
    """Abort the agent; the task ends terminated. Its sandbox stays until deleted or reaped."""
    return service.to_read(await service.stop(session, principal.user.id, task_id))


@router.delete("/{task_id}", responses=ERRORS)
async def delete_task(
    task_id: uuid.UUID,
    session: SessionDep,
    principal: Writer,
) -> dict[str, bool]:
    """Delete the task, its events and its sandbox."""
    task = await service.delete_task(session, principal.user.id, task_id)
    if task.sandbox_path and task.sandbox_destroyed_at is None:
        await jobs.destroy_sandbox.configure(
            connection=await raw_connection(session), queue=task.worker_queue
        ).defer_async(path=task.sandbox_path)
    return {"success": True}
