"""Settings, read once from the environment (prefix OUTRIDER_, plus DATABASE_URL)."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from starlette.requests import Request


class SignupPolicy(StrEnum):
    open = "open"
    closed = "closed"


class ProviderConfig(BaseModel):
    """An OpenAI-compatible endpoint from OUTRIDER_PROVIDERS."""

    model_config = ConfigDict(populate_by_name=True)

    base_url: str = Field(alias="baseUrl")
    api_key: str | None = Field(default=None, alias="apiKey")
    models: list[str] = Field(default_factory=list)


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_cidrs(value: str) -> tuple[IPNetwork, ...]:
    """ "10.0.0.0/8, fd00::/8" -> the networks the egress guard lets through."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def parse_schedule(text: str) -> tuple[float, ...]:
    """ "0,5s,5m" -> (0, 5, 300): the wait before each attempt, in seconds."""
    waits = []
    for part in text.split(","):
        found = _DURATION.match(part)
        if not found:
            raise ValueError(f"not a duration: {part!r} (use e.g. 0, 5s, 5m, 2h)")
        waits.append(float(found.group(1)) * _UNITS[found.group(2)])
    return tuple(waits)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTRIDER_", extra="ignore")

    home: Path = Field(default=Path(".outrider"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "OUTRIDER_DATABASE_URL")
    )
    secret_key: str | None = None
    # Unset: open until the first user exists, then closed.
    signup: SignupPolicy | None = None
    rate_limit_per_minute: int = Field(default=600, ge=1)
    session_days: int = Field(default=14, ge=1)
    log_level: str = "INFO"

    # Tasks and the agent.
    anthropic_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY")
    )
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    default_model: str | None = None
    task_timeout: float = Field(default=3600, gt=0, description="seconds of agent work per prompt")
    provision_timeout: float = Field(default=300, gt=0)
    # "none" runs the agent unisolated, as the worker's user: unsafe, explicit opt-in only.
    sandbox: Literal["bubblewrap", "none"] = "bubblewrap"
    sandbox_ttl: float = Field(default=86400, gt=0, description="seconds after last activity")
    sandbox_memory_mb: int = Field(default=4096, ge=256)
    sandbox_max_processes: int = Field(default=512, ge=16)
    allowed_private_cidrs: str = ""
    webhook_retry_schedule: str = Field(
        default="0,5s,5m,30m,2h,5h,10h,10h", description="wait before each attempt"
    )

    @field_validator("allowed_private_cidrs")
    @classmethod
    def _cidrs_parse(cls, value: str) -> str:
        parse_allowed_cidrs(value)  # a typo fails at start-up, not on the first request
        return value

    @cached_property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return parse_allowed_cidrs(self.allowed_private_cidrs)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @property
    def webhook_schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.webhook_retry_schedule)

    webhook_timeout: float = Field(default=10, gt=0, description="seconds per attempt")
    # Deliveries in flight at once: per receiver across all workers, and per worker.
    webhook_endpoint_concurrency: int = Field(default=4, ge=1)
    webhook_concurrency: int = Field(default=20, ge=1)
    worker_concurrency: int = Field(default=10, ge=1)
    # Names this machine's sandbox queue; must stay the same across restarts.
    worker_name: str | None = None
    opencode_version: str = "1.18.33"

    # Where OpenCode is installed from npm; shared by every task's sandbox (read-only).
    tools: Path | None = None

    @property
    def tools_dir(self) -> Path:
        return (self.tools or self.home / "tools").resolve()

    @property
    def sandboxes_dir(self) -> Path:
        return self.home / "sandboxes"

    def configured_providers(self) -> dict[str, ProviderConfig | None]:
        """Provider id -> its OpenAI-compatible endpoint (None for OpenCode's built-ins)."""
        found: dict[str, ProviderConfig | None] = {}
        if self.anthropic_api_key:
            found["anthropic"] = None
        if self.openai_api_key:
            found["openai"] = None
        found.update(self.providers)
        return found

    @cached_property
    def resolved_secret_key(self) -> bytes:
        """The server secret: from the environment, or generated once into OUTRIDER_HOME."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.home / "secret_key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting together must not both write a secret.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def app_settings(request: Request) -> Settings:
    """The settings the running app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_settings() -> Settings:
    return Settings()
