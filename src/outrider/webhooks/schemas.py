"""Webhook endpoints, secrets and deliveries as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from outrider.schemas_common import Schema
from outrider.webhooks.models import TERMINAL_EVENTS, DeliveryStatus, EventType


def _some_events(value: list[EventType]) -> list[EventType]:
    if not value:
        raise ValueError("events must name at least one event type")
    return list(dict.fromkeys(value))  # each once, in the order given


EventTypes = Annotated[list[EventType], AfterValidator(_some_events)]


class EndpointCreate(Schema):
    url: str = Field(max_length=2048, examples=["https://ci.example.com/outrider"])
    description: str | None = Field(default=None, max_length=500, examples=["CI bot"])
    events: EventTypes = Field(
        default_factory=lambda: list(TERMINAL_EVENTS),
        description="Event types to receive; by default the terminal ones.",
        examples=[["task.completed", "task.error"]],
    )


class EndpointUpdate(Schema):
    url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    events: EventTypes | None = None
    enabled: bool | None = None


class EndpointRead(Schema):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[EventType]
    enabled: bool
    disabled_reason: str | None = Field(description="Why Outrider disabled it, if it did.")
    created_at: datetime
    updated_at: datetime


class EndpointList(Schema):
    endpoints: list[EndpointRead]


class SecretRead(Schema):
    secret: str = Field(
        description="whsec_ + base64 of 32 bytes: verify with any Standard Webhooks library.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    previous_secret_expires_at: datetime | None = Field(
        description="While set, deliveries are also signed with the previous secret."
    )


class EndpointCreated(EndpointRead):
    secret: str = Field(description="Shown this once; rotate to get a new one.")


class AttemptRead(Schema):
    number: int
    attempted_at: datetime
    response_status: int | None
    duration_ms: int
    response_body: str | None = Field(description="The first 2 KB of the response.")
    error: str | None


class DeliveryRead(Schema):
    id: uuid.UUID
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event_type: EventType
    task_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None
    url: str
    status: DeliveryStatus
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptRead]


class DeliveryList(Schema):
    deliveries: list[DeliveryRead]
    next_cursor: str | None
