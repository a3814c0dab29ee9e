"""The database: where it is (embedded or DATABASE_URL), the engine, the request session."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from outrider.config import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "outrider"

# Kept alive for the life of the process: pgserver stops the embedded server when the
# last process holding a handle exits, so `serve` and CLI commands can share it.
_embedded_server: Any = None


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _to_sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def start_embedded_postgres(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL in OUTRIDER_HOME/postgres; return its libpq URI."""
    global _embedded_server
    from pgserver.postgres_server import get_server  # lazily: only embedded mode needs it

    if _embedded_server is None:
        data_dir = (settings.home / "postgres").resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL", extra={"data_dir": str(data_dir)})
        _embedded_server = get_server(data_dir, cleanup_mode="stop")
    admin_uri: str = _embedded_server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if not exists:
            # Another process may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    uri: str = _embedded_server.get_uri(EMBEDDED_DATABASE)
    return uri


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the database every process of this deployment shares."""
    if settings.database_url:
        return _to_sqlalchemy_url(settings.database_url)
    return _to_sqlalchemy_url(start_embedded_postgres(settings))


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    # A pool big enough to keep its connections: overflow connections are closed on
    # return, and reconnecting to PostgreSQL costs more than the query. No pre-ping
    # (a round trip per checkout); a dropped connection invalidates the pool instead.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session a request, committed once when the route returns, rolled back on error."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": commit before the response is sent, so a client never reads
# an answer whose write has not landed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
