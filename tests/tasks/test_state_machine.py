"""Status changes: one conditional UPDATE, exactly one winner, one event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from outrider.db import sessionmaker
from outrider.events.models import TaskEvent
from outrider.models_common import utcnow
from outrider.tasks import service
from outrider.tasks.models import Task, TaskStatus
from outrider.worker.jobs import decide


async def test_duplicate_completions_make_one_transition_and_one_event(
    engine: AsyncEngine, make_account: Callable[..., Any]
) -> None:
    account = await make_account()
    sessions = sessionmaker(engine)
    task_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        session.add(
            Task(
                id=task_id,
                user_id=account.user_id,
                status=TaskStatus.active,
                title="t",
                prompt="p",
                agent="build",
                model="m/m",
                created_at=utcnow(),
                updated_at=utcnow(),
                last_activity_at=utcnow(),
                input_tokens=0,
                output_tokens=0,
                cost=0.0,
            )
        )

    async def complete() -> bool:
        async with sessions() as session, session.begin():
            return await service.complete_unless_queued(session, task_id, summary="done")

    # Two idle events, two workers, a retried job: all race for the same change.
    results = await asyncio.gather(*(complete() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    async with sessions() as session:
        events = await session.scalars(select(TaskEvent).where(TaskEvent.task_id == task_id))
        statuses = [e.data["status"] for e in events if e.type == "task.status"]
    assert statuses == ["completed"]


def _assistant(parent: str, **info: Any) -> dict[str, Any]:
    return {
        "info": {"role": "assistant", "parentID": parent, "time": {"created": 1}, **info},
        "parts": info.pop("parts", []),
    }


def test_the_outcome_is_read_from_the_last_assistant_message() -> None:
    user = {"info": {"id": "msg_u", "role": "user"}, "parts": []}
    step = {"type": "step-finish", "tokens": {"input": 100, "output": 10}, "cost": 0.5}
    working = _assistant("msg_u", finish="tool-calls", time={"created": 1, "completed": 2})
    working["parts"] = [step]
    done = _assistant("msg_u", finish="stop", time={"created": 2, "completed": 3})
    done["parts"] = [{"type": "text", "text": "All good."}, step]
    outcome = decide([user, working, done], "msg_u")
    assert outcome.status is TaskStatus.completed and outcome.summary == "All good."
    assert outcome.usage == {"input_tokens": 200, "output_tokens": 20, "cost": 1.0}
    # Idle after tool calls only, or for an older prompt: not finished.
    assert decide([user, working], "msg_u").status is None
    assert decide([user, done], "msg_other").status is None
    failed = _assistant("msg_u", error={"name": "APIError", "data": {"message": "boom"}})
    assert decide([user, failed], "msg_u").error == "The model failed: boom"
