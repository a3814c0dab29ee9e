"""Tasks, their queued follow-up messages, and idempotency records."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from outrider.db import Base
from outrider.models_common import CreatedAtMixin, IdMixin, utcnow


class TaskStatus(StrEnum):
    creating = "creating"
    active = "active"
    completed = "completed"
    error = "error"
    terminated = "terminated"


TERMINAL_STATUSES = (TaskStatus.completed, TaskStatus.error, TaskStatus.terminated)
LIVE_STATUSES = (TaskStatus.creating, TaskStatus.active)


class Task(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "tasks"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", native_enum=False, length=16)
    )
    title: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    repo_url: Mapped[str | None] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    agent: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    pr_url: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Runtime: where the sandbox lives and what the agent calls this task.
    agent_session_id: Mapped[str | None] = mapped_column(String(100))
    worker_queue: Mapped[str | None] = mapped_column(String(100))
    sandbox_path: Mapped[str | None] = mapped_column(Text)
    sandbox_destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The agent's own record of the conversation, saved after every prompt.
    conversation: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    last_activity_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_tasks_status", "status"),
    )


class TaskMessage(IdMixin, CreatedAtMixin, Base):
    """A follow-up prompt, queued until the agent is idle."""

    __tablename__ = "task_messages"

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_task_messages_task_id_created_at", "task_id", "created_at"),)


class IdempotencyRecord(CreatedAtMixin, Base):
    __tablename__ = "idempotency_records"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
