"""Sign-up, sign-in, sessions and CSRF, through the HTTP routes a browser uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.accounts.models import User, WebSession
from outrider.config import Settings, SignupPolicy
from outrider.models_common import utcnow

PASSWORD = "correct horse battery"


def csrf_token(page: str) -> str:
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert match, "the page carries no CSRF token"
    return match.group(1)


async def sign_up(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/signup", data={"email": email, "password": password})


async def test_the_first_user_becomes_admin_and_signup_then_closes(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    response = await sign_up(client, "first@example.com")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http here
    user = (await db.scalars(select(User))).one()
    assert user.is_admin

    client.cookies.clear()
    closed = await sign_up(client, "second@example.com")
    assert closed.status_code == 403
    assert "Sign-up is closed" in closed.text
    assert await db.scalar(select(func.count()).select_from(User)) == 1


async def test_signup_stays_open_when_set_open(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], Any], db: AsyncSession
) -> None:
    async with make_client(make_settings(signup=SignupPolicy.open)) as client:
        assert (await sign_up(client, "one@example.com")).status_code == 303
        client.cookies.clear()
        assert (await sign_up(client, "two@example.com")).status_code == 303
    admins = (await db.scalars(select(User.is_admin).order_by(User.created_at))).all()
    assert admins == [True, False]


async def test_signup_errors_are_shown_on_the_page_and_write_nothing(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], Any], db: AsyncSession
) -> None:
    async with make_client(make_settings(signup=SignupPolicy.open)) as client:
        short = await sign_up(client, "ada@example.com", "short")
        assert short.status_code == 400
        assert "at least 8 characters" in short.text
        invalid = await sign_up(client, "not-an-email")
        assert invalid.status_code == 400 and "valid email" in invalid.text
        assert await db.scalar(select(func.count()).select_from(User)) == 0
        assert (await sign_up(client, "ada@example.com")).status_code == 303
        client.cookies.clear()
        duplicate = await sign_up(client, "ADA@example.com")
        assert duplicate.status_code == 400
        assert "already exists" in duplicate.text
    assert await db.scalar(select(func.count()).select_from(User)) == 1


async def test_sign_in_with_wrong_password_or_unknown_email_says_so(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "ada@example.com")
    client.cookies.clear()
    for email, password in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
    ]:
        response = await client.post("/signin", data={"email": email, "password": password})
        assert response.status_code == 400
        assert "Incorrect email or password." in response.text
        assert "set-cookie" not in response.headers
    ok = await client.post("/signin", data={"email": "Ada@Example.com", "password": PASSWORD})
    assert ok.status_code == 303
    assert (await client.get("/settings")).status_code == 200


async def test_repeated_failed_sign_ins_slow_down_per_email_and_per_ip(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "ada@example.com")
    client.cookies.clear()
    for _ in range(5):
        response = await client.post(
            "/signin", data={"email": "ada@example.com", "password": "wrong password"}
        )
        assert response.status_code == 400
    throttled = await client.post(
        "/signin", data={"email": "ada@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.text
    assert int(throttled.headers["retry-after"]) >= 1
    # The same IP trying another address is slowed down too.
    other = await client.post("/signin", data={"email": "eve@example.com", "password": "x" * 9})
    assert other.status_code == 429


async def test_a_cross_site_sign_in_is_refused(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    client.cookies.clear()
    response = await client.post(
        "/signin",
        data={"email": "ada@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


async def test_state_changes_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await sign_up(client, "ada@example.com")
    token = csrf_token((await client.get("/settings")).text)

    refused = await client.post("/api/keys", json={"name": "ci"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    wrong = await client.post("/api/keys", json={"name": "ci"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    signout = await client.post("/signout", data={"csrf_token": "forged"})
    assert signout.status_code == 403
    assert (await client.get("/api/keys")).json() == {"keys": []}

    created = await client.post("/api/keys", json={"name": "ci"}, headers={"X-CSRF-Token": token})
    assert created.status_code == 201


async def test_the_key_routes_for_signed_in_people(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/keys")).status_code == 401
    await sign_up(client, "ada@example.com")
    headers = {"X-CSRF-Token": csrf_token((await client.get("/settings")).text)}

    created = await client.post(
        "/api/keys",
        json={"name": "  ci-bot ", "scopes": ["tasks:read"], "expiresInDays": 30},
        headers=headers,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "ci-bot" and body["scopes"] == ["tasks:read"]
    assert body["key"].startswith("or_") and body["start"] == body["key"][:8]
    assert body["expiresAt"] is not None

    listed = (await client.get("/api/keys")).json()["keys"]
    assert [key["id"] for key in listed] == [body["id"]]
    assert "key" not in listed[0]

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['key']}"})
    assert me.status_code == 200

    blank = await client.post("/api/keys", json={"name": "   "}, headers=headers)
    assert blank.status_code == 400 and blank.json()["code"] == "invalid_request"
    bad_scope = await client.post(
        "/api/keys", json={"name": "x", "scopes": ["admin"]}, headers=headers
    )
    assert bad_scope.status_code == 400

    revoked = await client.delete(f"/api/keys/{body['id']}", headers=headers)
    assert revoked.json() == {"success": True}
    assert (await client.get("/api/keys")).json() == {"keys": []}
    again = await client.delete(f"/api/keys/{body['id']}", headers=headers)
    assert again.status_code == 404
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['key']}"})
    assert me.status_code == 401


async def test_another_users_key_cannot_be_revoked(
    client: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    victim = await make_account()
    attacker = await make_account()
    await client.post("/signin", data={"email": attacker.email, "password": PASSWORD})
    headers = {"X-CSRF-Token": csrf_token((await client.get("/settings")).text)}
    response = await client.delete(f"/api/keys/{victim.key_id}", headers=headers)
    assert response.status_code == 404
    assert (await client.get("/api/v1/me", headers=victim.headers)).status_code == 200


async def test_an_expired_session_is_signed_out(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await sign_up(client, "ada@example.com")
    assert (await client.get("/settings")).status_code == 200
    await db.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    response = await client.get("/settings")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/settings"


async def test_signing_out_ends_the_session_server_side(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await sign_up(client, "ada@example.com")
    cookie = client.cookies["outrider_session"]
    token = csrf_token((await client.get("/settings")).text)
    response = await client.post("/signout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert await db.scalar(select(func.count()).select_from(WebSession)) == 0
    # Replaying the old cookie gets nowhere.
    client.cookies.set("outrider_session", cookie)
    assert (await client.get("/settings")).status_code == 303


async def test_sign_in_redirects_back_only_to_local_pages(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    client.cookies.clear()
    for next_url, expected in [
        ("/settings", "/settings"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
    ]:
        response = await client.post(
            "/signin", data={"email": "ada@example.com", "password": PASSWORD, "next": next_url}
        )
        assert response.headers["location"] == expected
        client.cookies.clear()
