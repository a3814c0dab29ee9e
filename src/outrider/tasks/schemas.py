"""Request and response shapes of /api/v1/tasks (camelCase, as the original API had them)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from outrider.schemas_common import Schema
from outrider.tasks.models import TaskStatus

_AGENT = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def is_valid_ref_name(name: str) -> bool:
    """git check-ref-format's rules for a branch name, without running git."""
    if not name or len(name) > 255 or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if name == "@" or ".." in name or "//" in name or "@{" in name or name.endswith(".lock"):
        return False
    if any(ord(c) < 0x20 or c in " ~^:?*[\\\x7f" for c in name):
        return False
    return all(
        part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/")
    )


class TaskCreate(Schema):
    prompt: str = Field(max_length=100_000, examples=["Fix the flaky test in tests/test_api.py"])
    repo_url: str | None = Field(
        default=None, max_length=2000, examples=["https://github.com/acme/widgets.git"]
    )
    branch: str | None = Field(default=None, max_length=255, examples=["main"])
    agent: str = Field(default="build", examples=["build"])
    model: str | None = Field(default=None, examples=["anthropic/claude-sonnet-4-5"])
    webhook_url: str | None = Field(default=None, max_length=2000)
    title: str | None = Field(default=None, max_length=200)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("branch")
    @classmethod
    def _branch_is_a_ref(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_ref_name(value):
            raise ValueError("branch is not a valid git branch name")
        return value

    @field_validator("agent")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        if not _AGENT.match(value):
            raise ValueError("agent must be an OpenCode agent name, like build or plan")
        return value


class TaskCreated(Schema):
    task_id: uuid.UUID
    status: TaskStatus
    message: str


class Usage(Schema):
    input_tokens: int
    output_tokens: int
    cost: float


class TaskRead(Schema):
    task_id: uuid.UUID
    status: TaskStatus
    title: str
    prompt: str
    repo_url: str | None
    branch: str | None
    pr_url: str | None
    webhook_url: str | None
    agent: str
    model: str
    error: str | None
    summary: str | None
    usage: Usage
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class TaskList(Schema):
    tasks: list[TaskRead]
    next_cursor: str | None


class MessageCreate(Schema):
    text: str = Field(max_length=100_000)
    model: str | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        return value


class MessageAccepted(Schema):
    task_id: uuid.UUID
    status: TaskStatus
    queued: int = Field(description="follow-ups waiting for the agent, this one included")


class MessageRead(Schema):
    id: str
    role: str
    text: str
    parts: list[dict[str, Any]]
    created_at: datetime | None
