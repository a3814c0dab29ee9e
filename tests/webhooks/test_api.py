"""The webhook API's contract: validation that writes nothing, tenant isolation, scopes,
secrets shown once and stored encrypted, rotation, and the delivery log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from outrider.apikeys.schemas import Scope
from outrider.config import Settings
from outrider.webhooks import service
from outrider.webhooks.jobs import signature_header
from outrider.webhooks.models import DeliveryStatus, EventType, WebhookDelivery


@pytest.fixture
def hook_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_private_cidrs="")


@pytest.fixture
async def client(
    hook_settings: Settings, make_client: Callable[[Settings], Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(hook_settings) as client:
        yield client


@pytest.fixture
async def api(client: httpx.AsyncClient, make_account: Callable[..., Any]) -> httpx.AsyncClient:
    client.headers.update((await make_account()).headers)
    return client


async def endpoint_rows(db: AsyncSession) -> int:
    return int(await db.scalar(text("SELECT count(*) FROM webhook_endpoints")) or 0)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({}, "invalid_request", "url"),
        ({"url": "http://127.0.0.1/hook"}, "invalid_url", "not a public address"),
        ({"url": "http://169.254.169.254/"}, "invalid_url", "not a public address"),
        ({"url": "ftp://8.8.8.8/"}, "invalid_url", "Only http and https"),
        ({"url": "https://u:p@8.8.8.8/"}, "invalid_url", "credentials"),
        ({"url": "https://8.8.8.8/", "events": []}, "invalid_request", "at least one"),
        ({"url": "https://8.8.8.8/", "events": ["task.exploded"]}, "invalid_request", "events"),
        ({"url": "https://8.8.8.8/", "secret": "mine"}, "invalid_request", "secret"),
    ],
)
async def test_a_bad_endpoint_is_refused_and_nothing_is_written(
    api: httpx.AsyncClient, db: AsyncSession, body: dict[str, Any], code: str, fragment: str
) -> None:
    response = await api.post("/api/v1/webhooks", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert fragment in response.json()["error"]
    assert await endpoint_rows(db) == 0


async def test_endpoint_lifecycle_and_the_secret_is_shown_once_and_stored_encrypted(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await api.post(
        "/api/v1/webhooks", json={"url": "https://8.8.8.8/hook", "description": "CI"}
    )
    assert created.status_code == 201
    endpoint = created.json()
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and len(secret) == 6 + 44
    assert endpoint["events"] == ["task.completed", "task.error", "task.terminated"]
    assert endpoint["enabled"] is True

    read = (await api.get(f"/api/v1/webhooks/{endpoint['id']}")).json()
    assert "secret" not in read and read["description"] == "CI"
    listed = (await api.get("/api/v1/webhooks")).json()["endpoints"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    stored = await db.scalar(text("SELECT secret_ciphertext FROM webhook_endpoints"))
    assert secret.encode() not in stored and secret[6:].encode() not in stored

    patched = await api.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        json={"events": ["task.created", "task.completed"], "enabled": False},
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["task.created", "task.completed"]
    assert patched.json()["enabled"] is False
    refused = await api.patch(
        f"/api/v1/webhooks/{endpoint['id']}", json={"url": "http://10.0.0.1/"}
    )
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_url"
    assert (await api.get(f"/api/v1/webhooks/{endpoint['id']}")).json()["url"] == (
        "https://8.8.8.8/hook"
    )

    deleted = await api.delete(f"/api/v1/webhooks/{endpoint['id']}")
    assert deleted.json() == {"success": True}
    assert (await api.get(f"/api/v1/webhooks/{endpoint['id']}")).status_code == 404


async def test_rotation_signs_with_old_and_new_for_a_day(
    api: httpx.AsyncClient, db: AsyncSession, hook_settings: Settings
) -> None:
    endpoint = (await api.post("/api/v1/webhooks", json={"url": "https://8.8.8.8/"})).json()
    rotated = await api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]

    # What the delivery job signs with now: both, space-separated; each verifies alone.
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        message_id="msg_1",
        user_id=uuid.UUID((await api.get("/api/v1/me")).json()["user"]["id"]),
        endpoint_id=uuid.UUID(endpoint["id"]),
        url=endpoint["url"],
        event_type=EventType.task_completed,
        body="{}",
        status=DeliveryStatus.pending,
        dedupe_key="rotation-test",
    )
    db.add(delivery)
    await db.flush()
    due = await service.due_attempt(db, hook_settings, delivery.id)
    assert due is not None
    secrets = due.secrets
    assert secrets == [new_secret, endpoint["secret"]]
    moment = datetime.now(UTC)
    header = signature_header(secrets, "msg_1", moment, "{}")
    assert len(header.split(" ")) == 2
    for secret in (new_secret, endpoint["secret"]):
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": header,
        }
        assert Webhook(secret).verify("{}", headers) == {}


async def test_the_account_signing_secret_is_stable_until_rotated(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/v1/webhooks/signing-secret")).json()
    again = (await api.get("/api/v1/webhooks/signing-secret")).json()
    assert first["secret"] == again["secret"] and first["secret"].startswith("whsec_")
    assert first["previousSecretExpiresAt"] is None
    rotated = (await api.post("/api/v1/webhooks/signing-secret/rotate")).json()
    assert rotated["secret"] != first["secret"]
    assert rotated["previousSecretExpiresAt"] is not None


async def test_another_users_endpoints_and_deliveries_are_404(
    client: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    owner, other = await make_account(), await make_account()
    endpoint = (
        await client.post(
            "/api/v1/webhooks", json={"url": "https://8.8.8.8/"}, headers=owner.headers
        )
    ).json()
    path = f"/api/v1/webhooks/{endpoint['id']}"
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("POST", f"{path}/rotate-secret", None),
        ("POST", f"/api/v1/webhooks/deliveries/{endpoint['id']}/redeliver", None),
    ]:
        response = await client.request(method, url, json=body, headers=other.headers)
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"
    assert (await client.get("/api/v1/webhooks", headers=other.headers)).json() == {"endpoints": []}
    assert (await client.get(path, headers=owner.headers)).json()["enabled"] is True


async def test_scopes_are_enforced(
    client: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    reader = await make_account(scopes=[Scope.webhooks_read])
    listed = await client.get("/api/v1/webhooks", headers=reader.headers)
    assert listed.status_code == 200
    for method, url in [
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/signing-secret"),
    ]:
        response = await client.request(
            method, url, json={"url": "https://8.8.8.8/"}, headers=reader.headers
        )
        assert response.status_code == 403, url
        assert response.json()["code"] == "insufficient_scope"
    tasks_only = await make_account(scopes=[Scope.tasks_read])
    assert (await client.get("/api/v1/webhooks", headers=tasks_only.headers)).status_code == 403
