"""Users, their web sessions, and failed sign-ins (for throttling)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from outrider.db import Base
from outrider.models_common import CreatedAtMixin, IdMixin


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "users"

    # Stored lower-cased: one address, one account, whatever the capitalisation.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(CreatedAtMixin, Base):
    __tablename__ = "web_sessions"

    # SHA-256 of the cookie value: a leaked table does not yield usable cookies.
    token_digest: Mapped[bytes] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(400))

    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)


class SignInFailure(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "sign_in_failures"

    # One row per failed attempt, keyed both ways: "email:<addr>" and "ip:<addr>".
    subject: Mapped[str] = mapped_column(String(400))

    __table_args__ = (Index("ix_sign_in_failures_subject_created_at", "subject", "created_at"),)
