"""Keyset pagination, newest first, for any table with created_at and id: stable while
new rows are inserted at the top, and as fast on page 1000 as on page 1."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from outrider.errors import ApiError


class Paged(Protocol):
    created_at: datetime
    id: uuid.UUID


Row = TypeVar("Row", bound=Paged)


def encode_cursor(row: Paged) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, row_id = raw.partition("|")
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned.") from error


async def newest_first(
    session: AsyncSession,
    statement: Select[Row],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Row], str | None]:
    """One page of `statement`, and the cursor of the next (None on the last page)."""
    if cursor:
        created, after_id = decode_cursor(cursor)
        statement = statement.where(tuple_(created_at, row_id) < tuple_(created, after_id))
    ordered: Any = statement.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    rows = (await session.scalars(ordered)).all()
    page = rows[:limit]
    return page, (encode_cursor(page[-1]) if len(rows) > limit else None)
