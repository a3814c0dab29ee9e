"""Webhook tests run against the live Outrider (its worker delivers) and a real receiver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.config import ProviderConfig, Settings
from outrider.tasks import service as tasks
from outrider.tasks.models import TaskStatus
from outrider.tasks.schemas import TaskCreate


@pytest.fixture
async def account(make_account: Callable[..., Any]) -> Any:
    return await make_account()


@pytest.fixture
async def api(live: str, account: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live, headers=account.headers, timeout=30) as client:
        yield client


def server_settings() -> Settings:
    """Enough of the live server's settings to write tasks in-process."""
    return Settings(
        providers={"scripted": ProviderConfig(base_url="http://127.0.0.1:9/v1", models=["m"])},
        default_model="scripted/m",
        secret_key="task-tests",
        allowed_private_cidrs="127.0.0.0/8",
    )


async def new_task(
    db: AsyncSession, user_id: uuid.UUID, webhook_url: str | None = None
) -> uuid.UUID:
    """A task row written as the API writes it (its task.created deliveries with it), but
    with no agent job: these tests drive its status changes themselves."""
    task = await tasks.create_task(
        db, server_settings(), user_id, TaskCreate(prompt="p", webhook_url=webhook_url), None
    )
    await db.commit()
    return task.id


async def change_status(
    db: AsyncSession, task_id: uuid.UUID, new: TaskStatus, **values: Any
) -> bool:
    won = await tasks.transition(
        db, task_id, [TaskStatus.creating, TaskStatus.active], new, **values
    )
    await db.commit()
    return won


async def add_endpoint(
    api: httpx.AsyncClient, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    created = await api.post("/api/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    return endpoint
