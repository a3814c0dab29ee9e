"""Request and response shapes for API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from outrider.schemas_common import Schema


class Scope(StrEnum):
    tasks_read = "tasks:read"
    tasks_write = "tasks:write"
    webhooks_read = "webhooks:read"
    webhooks_write = "webhooks:write"


ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)
MAX_EXPIRY_DAYS = 3650


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=100, examples=["ci-bot"])
    scopes: list[Scope] | None = Field(
        default=None, description="Defaults to every scope.", examples=[["tasks:read"]]
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class ApiKeyRead(Schema):
    id: uuid.UUID
    name: str
    start: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key. It is shown this once and never again.")


class ApiKeyList(Schema):
    keys: list[ApiKeyRead]


class MeUser(Schema):
    id: uuid.UUID
    email: str


class MeKey(Schema):
    id: uuid.UUID
    name: str
    start: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None


class Me(Schema):
    user: MeUser
    key: MeKey
