"""Tasks: creation, reads, follow-ups, stop, delete, and the one way status changes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from outrider import egress
from outrider.config import Settings
from outrider.errors import ApiError
from outrider.events import service as events
from outrider.models_common import utcnow
from outrider.pagination import newest_first
from outrider.tasks.models import (
    LIVE_STATUSES,
    IdempotencyRecord,
    Task,
    TaskMessage,
    TaskStatus,
)
from outrider.tasks.schemas import MessageRead, TaskCreate, TaskRead, Usage
from outrider.webhooks import service as webhooks

IDEMPOTENCY_WINDOW = timedelta(hours=24)
TITLE_LENGTH = 60


def default_title(prompt: str) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 3] + "..."


def resolve_model(settings: Settings, requested: str | None) -> str:
    """The "provider/model" to use, or a 400 naming what is configured."""
    providers = settings.configured_providers()
    if not providers:
        raise ApiError(
            400,
            "no_model_provider",
            "No model provider is configured on this server. Set ANTHROPIC_API_KEY or "
            "OPENAI_API_KEY, or OUTRIDER_PROVIDERS for an OpenAI-compatible endpoint, then "
            "restart Outrider.",
        )
    model = requested or settings.default_model
    if model is None:
        provider_id, endpoint = next(iter(providers.items()))
        if endpoint is None or not endpoint.models:
            raise ApiError(
                400,
                "model_required",
                "Name a model as provider/model (no OUTRIDER_DEFAULT_MODEL is set).",
            )
        model = f"{provider_id}/{endpoint.models[0]}"
    provider_id, slash, model_id = model.partition("/")
    names = ", ".join(sorted(providers))
    if not slash or not provider_id or not model_id:
        raise ApiError(
            400,
            "invalid_model",
            f"model must be provider/model, like {next(iter(providers))}/<model>. "
            f"Configured providers: {names}.",
        )
    if provider_id not in providers:
        raise ApiError(
            400,
            "unknown_provider",
            f"Unknown model provider {provider_id!r}. Configured providers: {names}.",
        )
    return model


def to_read(task: Task) -> TaskRead:
    return TaskRead(
        task_id=task.id,
        status=task.status,
        title=task.title,
        prompt=task.prompt,
        repo_url=task.repo_url,
        branch=task.branch,
        pr_url=task.pr_url,
        webhook_url=task.webhook_url,
        agent=task.agent,
        model=task.model,
        error=task.error,
        summary=task.summary,
        usage=Usage(
            input_tokens=task.input_tokens, output_tokens=task.output_tokens, cost=task.cost
        ),
        created_at=task.created_at,
        updated_at=task.updated_at,
        completed_at=task.completed_at,
    )


# --- status changes ---------------------------------------------------------------


async def transition(
    session: AsyncSession,
    task_id: uuid.UUID,
    expected: Sequence[TaskStatus],
    new: TaskStatus,
    **values: Any,
) -> bool:
    """Move a task from one of `expected` to `new` in one conditional UPDATE.

    Exactly one concurrent caller wins; the winner writes the task.status event in the
    same transaction. Returns whether this caller won.
    """
    now = utcnow()
    if new in (TaskStatus.completed, TaskStatus.error, TaskStatus.terminated):
        values.setdefault("completed_at", now)
    elif new is TaskStatus.active:
        values.setdefault("completed_at", None)
    task = await session.scalar(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(list(expected)))
        .values(status=new, updated_at=now, last_activity_at=now, **values)
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    if task is None:
        return False
    await _status_changed(session, task)
    return True


async def _status_changed(session: AsyncSession, task: Task) -> None:
    """What every status change writes with it: its task.status event and its webhook
    deliveries (named by that event's number, so a change is delivered once)."""
    seq = await events.append(
        session,
        task.id,
        [
            (
                "task.status",
                {"taskId": str(task.id), "status": task.status.value, "error": task.error},
            )
        ],
    )
    await webhooks.enqueue_status_change(session, task, seq)


# --- reads ------------------------------------------------------------------------


async def get_for_user(
    session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID, lock: bool = False
) -> Task:
    """The user's task; another user's task is a 404, exactly like a missing one."""
    statement = select(Task).where(Task.id == task_id, Task.user_id == user_id)
    if lock:
        statement = statement.with_for_update()
    task = await session.scalar(statement)
    if task is None:
        raise ApiError(404, "task_not_found", "No task with that id.")
    return task


async def list_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    status: TaskStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Task], str | None]:
    statement = select(Task).where(Task.user_id == user_id)
    if status is not None:
        statement = statement.where(Task.status == status)
    return await newest_first(session, statement, Task.created_at, Task.id, limit, cursor)


# --- creation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    task_id: uuid.UUID
    status_code: int
    body: dict[str, Any]
    replayed: bool


def _request_digest(body: TaskCreate) -> bytes:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


async def find_idempotent_replay(
    session: AsyncSession, user_id: uuid.UUID, key: str, body: TaskCreate
) -> Created | None:
    record = await session.get(IdempotencyRecord, (user_id, key))
    if record is None:
        return None
    if record.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        await session.delete(record)
        await session.flush()
        return None
    if record.request_digest != _request_digest(body):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request body.",
        )
    return Created(
        uuid.UUID(record.response["taskId"]), record.status_code, record.response, replayed=True
    )


async def create_task(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    body: TaskCreate,
    idempotency_key: str | None,
) -> Task:
    """Validate everything first, then write the task; the caller defers its job in the
    same transaction."""
    model = resolve_model(settings, body.model)
    if body.repo_url:
        await egress.accept(settings, body.repo_url, "repoUrl")
    if body.webhook_url:
        await egress.accept(settings, body.webhook_url, "webhookUrl")
    now = utcnow()
    task = Task(
        id=uuid.uuid4(),
        user_id=user_id,
        status=TaskStatus.creating,
        title=(body.title or "").strip() or default_title(body.prompt),
        prompt=body.prompt,
        repo_url=body.repo_url,
        branch=body.branch,
        agent=body.agent,
        model=model,
        webhook_url=body.webhook_url,
        input_tokens=0,
        output_tokens=0,
        cost=0.0,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )
    session.add(task)
    await session.flush()
    await _status_changed(session, task)
    if idempotency_key:
        session.add(
            IdempotencyRecord(
                user_id=user_id,
                key=idempotency_key,
                request_digest=_request_digest(body),
                status_code=201,
                response=created_body(task),
                created_at=now,
            )
        )
        try:
            await session.flush()
        except IntegrityError as error:
            raise ApiError(
                409,
                "idempotency_key_in_flight",
                "A request with this Idempotency-Key is being processed; retry.",
            ) from error
    return task


def created_body(task: Task) -> dict[str, Any]:
    return {
        "taskId": str(task.id),
        "status": task.status.value,
        "message": "Task created; the agent is being provisioned.",
    }


# --- follow-ups, stop, delete -----------------------------------------------------


async def queue_message(
    session: AsyncSession,
    user_id: uuid.UUID,
    task_id: uuid.UUID,
    text: str,
    model: str | None,
    settings: Settings,
) -> tuple[Task, int, bool]:
    """Queue a follow-up. Returns the task, the queue length, and whether the task was
    completed and must be resumed (the caller defers that job)."""
    if model is not None:
        model = resolve_model(settings, model)
    task = await get_for_user(session, user_id, task_id, lock=True)
    if task.status is TaskStatus.creating:
        raise ApiError(
            409,
            "task_not_ready",
            "The task is still being provisioned; send follow-ups once it is active.",
        )
    if task.status in (TaskStatus.error, TaskStatus.terminated):
        raise ApiError(
            409,
            f"task_{task.status.value}",
            f"The task is {task.status.value}; it takes no more messages.",
        )
    session.add(
        TaskMessage(id=uuid.uuid4(), task_id=task.id, text=text, model=model, created_at=utcnow())
    )
    await session.flush()
    resume = task.status is TaskStatus.completed
    if resume:
        await transition(session, task.id, [TaskStatus.completed], TaskStatus.active)
    queued = await session.scalar(
        select(func.count())
        .select_from(TaskMessage)
        .where(TaskMessage.task_id == task.id, TaskMessage.sent_at.is_(None))
    )
    await session.refresh(task)
    return task, int(queued or 0), resume


async def stop(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await get_for_user(session, user_id, task_id, lock=True)
    if not await transition(session, task.id, LIVE_STATUSES, TaskStatus.terminated, error=None):
        raise ApiError(
            409,
            "task_not_running",
            f"The task is {task.status.value}; only a creating or active task can be stopped.",
        )
    await session.refresh(task)
    return task


async def delete_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await get_for_user(session, user_id, task_id, lock=True)
    await session.execute(delete(Task).where(Task.id == task.id))
    return task


def conversation(task: Task) -> list[MessageRead]:
    result = []
    for message in task.conversation or []:
        info = message.get("info", {})
        parts = message.get("parts", [])
        created = (info.get("time") or {}).get("created")
        result.append(
            MessageRead(
                id=str(info.get("id")),
                role=str(info.get("role")),
                text="".join(p.get("text", "") for p in parts if p.get("type") == "text"),
                parts=parts,
                created_at=datetime.fromtimestamp(created / 1000, UTC) if created else None,
            )
        )
    return result


# --- what the worker asks ---------------------------------------------------------


async def next_pending_message(session: AsyncSession, task_id: uuid.UUID) -> TaskMessage | None:
    return await session.scalar(
        select(TaskMessage)
        .where(TaskMessage.task_id == task_id, TaskMessage.sent_at.is_(None))
        .order_by(TaskMessage.created_at, TaskMessage.id)
        .limit(1)
    )


async def complete_unless_queued(session: AsyncSession, task_id: uuid.UUID, **values: Any) -> bool:
    """active -> completed, unless a follow-up is waiting (then the agent goes on)."""
    await session.execute(select(Task.id).where(Task.id == task_id).with_for_update())
    waiting = await session.scalar(
        select(exists().where(TaskMessage.task_id == task_id, TaskMessage.sent_at.is_(None)))
    )
    if waiting:
        await session.execute(update(Task).where(Task.id == task_id).values(**values))
        return False
    return await transition(session, task_id, [TaskStatus.active], TaskStatus.completed, **values)


async def live_tasks_without_job(session: AsyncSession, older_than: timedelta) -> Sequence[Task]:
    rows = await session.scalars(
        select(Task).where(
            Task.status.in_(list(LIVE_STATUSES)),
            Task.updated_at < utcnow() - older_than,
            ~exists(
                select(text("1"))
                .select_from(text("procrastinate_jobs j"))
                .where(
                    text(
                        "j.task_name = 'run_agent' AND j.status IN ('todo', 'doing') "
                        "AND j.args->>'task_id' = tasks.id::text"
                    )
                )
            ),
        )
    )
    return rows.all()


async def sandboxes_to_reap(session: AsyncSession, queue: str, ttl: timedelta) -> Sequence[Task]:
    """Finished tasks on this worker whose sandbox has outlived OUTRIDER_SANDBOX_TTL."""
    rows = await session.scalars(
        select(Task).where(
            Task.worker_queue == queue,
            Task.sandbox_path.is_not(None),
            Task.sandbox_destroyed_at.is_(None),
            Task.status.in_([TaskStatus.completed, TaskStatus.error, TaskStatus.terminated]),
            Task.last_activity_at < utcnow() - ttl,
        )
    )
    return rows.all()
