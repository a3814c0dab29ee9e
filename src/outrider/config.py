"""Settings, read once from the environment (prefix OUTRIDER_, plus DATABASE_URL)."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SignupPolicy(StrEnum):
    open = "open"
    closed = "closed"


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


def get_settings() -> Settings:
    return Settings()
