"""Shared fixtures: one real PostgreSQL for the run (pgserver), a clean schema per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from pgserver.postgres_server import get_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from outrider.accounts import service as accounts
from outrider.apikeys import service as apikeys
from outrider.apikeys.schemas import Scope
from outrider.app import create_app
from outrider.config import Settings
from outrider.db import create_engine, sessionmaker
from outrider.migrations import upgrade_to_head
from tests.support.live import git, live, model, outrider_home, receiver  # noqa: F401  (fixtures)

TEST_DATABASE = "outrider_test"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server started by the suite itself, migrated to head."""
    server: Any = get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEST_DATABASE}"')
    url = str(server.get_uri(TEST_DATABASE)).replace("postgresql://", "postgresql+psycopg://", 1)
    upgrade_to_head(url)
    yield url
    server.cleanup()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def clean_database(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE users, sign_in_failures, procrastinate_jobs CASCADE"))


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and inspecting state; commits what it is asked to."""
    async with sessionmaker(engine)() as session:
        yield session


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "secret_key": "test-secret-key",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def make_client(database_url: str) -> Callable[[Settings], Any]:
    """An HTTP client speaking to an app built from the given settings, lifespan included."""

    class Client:
        def __init__(self, settings: Settings) -> None:
            self.app: FastAPI = create_app(settings, database_url)

        async def __aenter__(self) -> httpx.AsyncClient:
            self._stack = contextlib.AsyncExitStack()
            await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
            return await self._stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
                )
            )

        async def __aexit__(self, *exc: object) -> None:
            await self._stack.aclose()

    return Client


@pytest.fixture
async def client(
    settings: Settings, make_client: Callable[[Settings], Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as client:
        yield client


class Account:
    """A user with an API key, made through the services."""

    def __init__(self, user_id: uuid.UUID, email: str, key: str, key_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.email = email
        self.key = key
        self.key_id = key_id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def make_account(db: AsyncSession) -> Callable[..., Any]:
    async def make(
        email: str | None = None,
        scopes: list[Scope] | None = None,
        expires_in_days: int | None = None,
    ) -> Account:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        user = await accounts.create_user(db, email, PASSWORD)
        key, raw = await apikeys.create_key(db, user.id, "test key", scopes, expires_in_days)
        await db.commit()
        return Account(user.id, user.email, raw, key.id)

    return make
