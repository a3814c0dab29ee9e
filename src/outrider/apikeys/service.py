"""API keys: create, list, revoke, and authenticate a presented key."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.accounts.models import User
from outrider.apikeys import tokens
from outrider.apikeys.models import ApiKey
from outrider.apikeys.schemas import ALL_SCOPES, Scope
from outrider.models_common import utcnow

# lastUsedAt is for people ("used 5m ago"); writing it on every request would turn
# every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who an API request acts as."""

    user: User
    key: ApiKey

    def has_scope(self, scope: Scope) -> bool:
        return scope.value in self.key.scopes


async def create_key(
    session: AsyncSession,
    user_id: uuid.UUID,
    name: str,
    scopes: Sequence[Scope] | None = None,
    expires_in_days: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return its row and the full key, which is never stored."""
    raw = tokens.generate()
    chosen = list(dict.fromkeys(scopes)) if scopes else list(ALL_SCOPES)
    key = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        name=name,
        digest=tokens.digest(raw),
        start=tokens.start_of(raw),
        scopes=[scope.value for scope in chosen],
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(key)
    await session.flush()
    return key, raw


async def list_keys(session: AsyncSession, user_id: uuid.UUID) -> Sequence[ApiKey]:
    result = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return result.all()


async def revoke_key(
    session: AsyncSession, key_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> bool:
    """Revoke a key (of that user, when given). False when there is no such live key."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if user_id is not None:
        statement = statement.where(ApiKey.user_id == user_id)
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(session: AsyncSession, raw_key: str) -> Principal | None:
    """The principal a presented key stands for, or None for any kind of bad key."""
    if not tokens.is_well_formed(raw_key):
        return None  # refused before any database work
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.digest == tokens.digest(raw_key))
        )
    ).first()
    if row is None:
        return None
    key, user = row
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of one key write at most once a minute.
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key.id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Principal(user=user, key=key)
