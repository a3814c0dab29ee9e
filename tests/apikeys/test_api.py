"""The public API's key authentication, seen from a client."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.apikeys import tokens
from outrider.apikeys.models import ApiKey
from outrider.apikeys.schemas import Scope
from outrider.config import Settings
from outrider.models_common import utcnow

UNAUTHORIZED_BODY = {
    "error": "Missing or invalid API key. Send it as 'Authorization: Bearer or_...'.",
    "code": "invalid_api_key",
}


async def test_me_answers_the_user_and_the_key(
    client: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    account = await make_account(email="Ada@Example.com", scopes=[Scope.tasks_read])
    response = await client.get("/api/v1/me", headers=account.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": str(account.user_id), "email": "ada@example.com"}
    assert body["key"]["id"] == str(account.key_id)
    assert body["key"]["name"] == "test key"
    assert body["key"]["start"] == account.key[:8]
    assert body["key"]["scopes"] == ["tasks:read"]
    assert body["key"]["createdAt"].endswith("Z") or "+00:00" in body["key"]["createdAt"]
    assert body["key"]["expiresAt"] is None
    assert "digest" not in response.text and account.key not in response.text


async def test_the_key_is_stored_only_as_its_sha256_digest(
    db: AsyncSession, make_account: Callable[..., Any]
) -> None:
    account = await make_account()
    row = (await db.scalars(select(ApiKey).where(ApiKey.id == account.key_id))).one()
    assert row.digest == hashlib.sha256(account.key.encode()).digest()
    dump = (await db.execute(text("SELECT api_keys::text FROM api_keys"))).scalar_one()
    assert account.key not in dump and account.key[8:] not in dump


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer " + tokens.generate(),  # well formed, unknown
        "Bearer or_" + "A" * 38,  # right shape, wrong checksum
    ],
)
async def test_missing_malformed_or_unknown_keys_get_one_identical_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED_BODY
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "ratelimit-limit" not in response.headers


async def test_a_revoked_key_stops_working_at_the_next_request(
    client: httpx.AsyncClient, db: AsyncSession, make_account: Callable[..., Any]
) -> None:
    account = await make_account()
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 200
    await db.execute(update(ApiKey).values(revoked_at=utcnow()))
    await db.commit()
    response = await client.get("/api/v1/me", headers=account.headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED_BODY


async def test_an_expired_key_gets_the_same_401(
    client: httpx.AsyncClient, db: AsyncSession, make_account: Callable[..., Any]
) -> None:
    account = await make_account(expires_in_days=1)
    me = await client.get("/api/v1/me", headers=account.headers)
    assert me.status_code == 200 and me.json()["key"]["expiresAt"] is not None
    await db.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    response = await client.get("/api/v1/me", headers=account.headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED_BODY


async def test_last_used_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, db: AsyncSession, make_account: Callable[..., Any]
) -> None:
    account = await make_account()

    async def last_used() -> Any:
        db.expire_all()
        return await db.scalar(select(ApiKey.last_used_at).where(ApiKey.id == account.key_id))

    assert await last_used() is None
    await client.get("/api/v1/me", headers=account.headers)
    first = await last_used()
    assert first is not None
    for _ in range(3):
        await client.get("/api/v1/me", headers=account.headers)
    assert await last_used() == first
    # A minute later, the next request moves it.
    await db.execute(update(ApiKey).values(last_used_at=first - timedelta(seconds=61)))
    await db.commit()
    await client.get("/api/v1/me", headers=account.headers)
    assert await last_used() > first


async def test_the_rate_limit_answers_429_with_retry_after(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], Any],
    make_account: Callable[..., Any],
) -> None:
    account = await make_account()
    other = await make_account()
    async with make_client(make_settings(rate_limit_per_minute=3)) as client:
        remaining = []
        for _ in range(3):
            response = await client.get("/api/v1/me", headers=account.headers)
            assert response.status_code == 200
            assert response.headers["ratelimit-limit"] == "3"
            assert int(response.headers["ratelimit-reset"]) >= 1
            remaining.append(int(response.headers["ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        limited = await client.get("/api/v1/me", headers=account.headers)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        assert limited.headers["ratelimit-remaining"] == "0"
        # Each key has its own bucket.
        assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200


async def test_a_missing_scope_answers_403_insufficient_scope(
    settings: Settings, make_client: Callable[[Settings], Any], make_account: Callable[..., Any]
) -> None:
    from fastapi import APIRouter, Depends

    from outrider.apikeys.dependencies import require_scope

    # A route guarded by a scope, the way the task and webhook routes are.
    router = APIRouter()

    @router.get("/api/v1/scope-probe", dependencies=[Depends(require_scope(Scope.tasks_write))])
    async def probe() -> dict[str, bool]:
        return {"ok": True}

    server = make_client(settings)
    server.app.include_router(router)
    reader = await make_account(scopes=[Scope.tasks_read])
    writer = await make_account(scopes=[Scope.tasks_write])
    async with server as client:
        denied = await client.get("/api/v1/scope-probe", headers=reader.headers)
        assert denied.status_code == 403
        assert denied.json() == {
            "error": "This API key lacks the 'tasks:write' scope.",
            "code": "insufficient_scope",
        }
        assert "insufficient_scope" in denied.headers["www-authenticate"]
        assert denied.headers["ratelimit-limit"] == "600"
        allowed = await client.get("/api/v1/scope-probe", headers=writer.headers)
        assert allowed.json() == {"ok": True}


async def test_a_new_key_has_every_scope_unless_narrowed(
    client: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    account = await make_account()
    body = (await client.get("/api/v1/me", headers=account.headers)).json()
    assert body["key"]["scopes"] == [
        "tasks:read",
        "tasks:write",
        "webhooks:read",
        "webhooks:write",
    ]


async def test_the_openapi_document_describes_me(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/me" in document["paths"]
    assert not any(path.startswith(("/settings", "/api/keys")) for path in document["paths"])
