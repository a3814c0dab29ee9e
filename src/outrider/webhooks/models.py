"""Webhook endpoints, signing secrets, and the durable delivery log (outbox + attempts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from outrider.db import Base
from outrider.models_common import CreatedAtMixin, IdMixin, utcnow


class EventType(StrEnum):
    task_created = "task.created"
    task_active = "task.active"
    task_completed = "task.completed"
    task_error = "task.error"
    task_terminated = "task.terminated"


TERMINAL_EVENTS = (EventType.task_completed, EventType.task_error, EventType.task_terminated)


class DeliveryStatus(StrEnum):
    pending = "pending"  # attempts remain, one is scheduled
    succeeded = "succeeded"
    failed = "failed"  # final: attempts exhausted, a final answer, or endpoint disabled


class RotatingSecretMixin:
    """A signing secret, encrypted; while rotating, the previous one signs too."""

    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEndpoint(IdMixin, CreatedAtMixin, RotatingSecretMixin, Base):
    __tablename__ = "webhook_endpoints"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Start of the current unbroken run of failed attempts; cleared by any success.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    __table_args__ = (Index("ix_webhook_endpoints_user_id_created_at", "user_id", "created_at"),)


class AccountSigningSecret(CreatedAtMixin, RotatingSecretMixin, Base):
    """Signs deliveries to per-task webhookUrls."""

    __tablename__ = "webhook_signing_secrets"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class WebhookDelivery(IdMixin, CreatedAtMixin, Base):
    """One message to one target: written with the status change that causes it."""

    __tablename__ = "webhook_deliveries"

    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # webhook-id
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # No foreign key: the log of a task's deliveries outlives the task.
    task_id: Mapped[uuid.UUID | None] = mapped_column()
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[EventType] = mapped_column(
        Enum(EventType, name="webhook_event_type", native_enum=False, length=32)
    )
    body: Mapped[str] = mapped_column(Text)  # exactly the bytes signed and sent
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="webhook_delivery_status", native_enum=False, length=16)
    )
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts in the current series (a redelivery starts a new one): the schedule index.
    series_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # One message per status change and target, whatever repeats upstream.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    attempts: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.number", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_webhook_deliveries_user_id_created_at", "user_id", "created_at"),
        Index("ix_webhook_deliveries_task_id", "task_id"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
    )


class WebhookAttempt(IdMixin, Base):
    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    response_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # the first 2 KB
    error: Mapped[str | None] = mapped_column(Text)
