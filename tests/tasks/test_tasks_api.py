"""The task API's contract without running the agent: validation, isolation, pagination,
idempotency. Every refused request must leave nothing behind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from outrider.apikeys.schemas import Scope
from outrider.config import Settings
from outrider.tasks.schemas import is_valid_ref_name
from outrider.tasks.service import default_title


@pytest.fixture
def task_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        providers={
            "scripted": {"baseUrl": "http://127.0.0.1:9/v1", "models": ["m"]},
            "local": {"baseUrl": "http://127.0.0.1:9/v1", "models": ["x"]},
        },
        default_model="scripted/m",
        allowed_private_cidrs="",
    )


@pytest.fixture
async def api(
    task_settings: Settings,
    make_client: Callable[[Settings], Any],
    make_account: Callable[..., Any],
) -> AsyncIterator[httpx.AsyncClient]:
    account = await make_account()
    async with make_client(task_settings) as client:
        client.headers.update(account.headers)
        yield client


async def count(db: AsyncSession, table: str) -> int:
    return int(await db.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608  (table names are the test's own constants)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({}, "invalid_request", "prompt"),
        ({"prompt": "   "}, "invalid_request", "prompt must not be blank"),
        (
            {"prompt": "x", "model": "gpt-4"},
            "invalid_model",
            "Configured providers: local, scripted",
        ),
        (
            {"prompt": "x", "model": "nope/m"},
            "unknown_provider",
            "Configured providers: local, scripted",
        ),
        ({"prompt": "x", "branch": "bad..branch"}, "invalid_request", "branch"),
        ({"prompt": "x", "branch": "-rf"}, "invalid_request", "branch"),
        ({"prompt": "x", "agent": "rm -rf"}, "invalid_request", "agent"),
        ({"prompt": "x", "repoUrl": "file:///etc/passwd"}, "invalid_repoUrl", "http and https"),
        (
            {"prompt": "x", "repoUrl": "http://127.0.0.1/repo.git"},
            "invalid_repoUrl",
            "not a public",
        ),
        (
            {"prompt": "x", "repoUrl": "http://user:pw@example.com/r.git"},
            "invalid_repoUrl",
            "credentials",
        ),
        (
            {"prompt": "x", "webhookUrl": "http://169.254.169.254/latest"},
            "invalid_webhookUrl",
            "not a public",
        ),
        ({"prompt": "x", "webhookUrl": "http://0x7f.1/hook"}, "invalid_webhookUrl", "not a public"),
        ({"prompt": "x", "extra": 1}, "invalid_request", "extra"),
    ],
)
async def test_invalid_requests_answer_400_and_write_nothing(
    api: httpx.AsyncClient, db: AsyncSession, body: dict[str, Any], code: str, fragment: str
) -> None:
    response = await api.post("/api/v1/tasks", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert fragment in response.json()["error"]
    assert await count(db, "tasks") == 0
    assert await count(db, "procrastinate_jobs") == 0


async def test_without_a_model_provider_tasks_are_refused_with_how_to_configure(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], Any],
    make_account: Callable[..., Any],
    db: AsyncSession,
) -> None:
    account = await make_account()
    async with make_client(make_settings(providers={})) as client:
        response = await client.post("/api/v1/tasks", json={"prompt": "x"}, headers=account.headers)
    assert response.status_code == 400
    assert response.json()["code"] == "no_model_provider"
    assert "OUTRIDER_PROVIDERS" in response.json()["error"]
    assert await count(db, "tasks") == 0


async def test_a_task_and_its_provision_job_commit_together(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "Fix " + "it " * 40})
    assert created.status_code == 201
    task_id = created.json()["taskId"]
    job = (await db.execute(text("SELECT task_name, args FROM procrastinate_jobs"))).one()
    assert job.task_name == "run_agent" and job.args == {"task_id": task_id}
    task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
    assert task["title"] == default_title("Fix " + "it " * 40)
    assert len(task["title"]) == 60 and task["title"].endswith("...")
    assert task["model"] == "scripted/m" and task["agent"] == "build"
    assert task["usage"] == {"inputTokens": 0, "outputTokens": 0, "cost": 0.0}


async def test_model_is_split_at_the_first_slash(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/tasks", json={"prompt": "x", "model": "local/gpt-4/turbo"})
    assert created.status_code == 201
    task = (await api.get(f"/api/v1/tasks/{created.json()['taskId']}")).json()
    assert task["model"] == "local/gpt-4/turbo"


async def test_idempotency_key_replays_or_refuses_a_different_body(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    first = await api.post("/api/v1/tasks", json={"prompt": "same"}, headers=headers)
    again = await api.post("/api/v1/tasks", json={"prompt": "same"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    assert await count(db, "tasks") == 1
    other = await api.post("/api/v1/tasks", json={"prompt": "different"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await count(db, "tasks") == 1


async def test_another_users_task_is_a_404_on_every_route(
    api: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    task_id = (await api.post("/api/v1/tasks", json={"prompt": "mine"})).json()["taskId"]
    other = await make_account()
    missing = "00000000-0000-0000-0000-000000000000"
    for target in (task_id, missing):
        for method, path, body in [
            ("GET", "", None),
            ("GET", "/messages", None),
            ("GET", "/events", None),
            ("POST", "/messages", {"text": "hi"}),
            ("POST", "/stop", None),
            ("DELETE", "", None),
        ]:
            response = await api.request(
                method, f"/api/v1/tasks/{target}{path}", json=body, headers=other.headers
            )
            assert response.status_code == 404, (method, path)
            assert response.json() == {"error": "No task with that id.", "code": "task_not_found"}
    assert (await api.get(f"/api/v1/tasks/{task_id}")).status_code == 200


async def test_scopes_guard_reads_and_writes(
    api: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    reader = await make_account(scopes=[Scope.tasks_read])
    refused = await api.post("/api/v1/tasks", json={"prompt": "x"}, headers=reader.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert (await api.get("/api/v1/tasks", headers=reader.headers)).status_code == 200
    writer_only = await make_account(scopes=[Scope.tasks_write])
    assert (await api.get("/api/v1/tasks", headers=writer_only.headers)).status_code == 403


async def test_listing_is_newest_first_and_stable_under_inserts(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    ids = [
        (await api.post("/api/v1/tasks", json={"prompt": f"t{i}"})).json()["taskId"]
        for i in range(5)
    ]
    page = (await api.get("/api/v1/tasks", params={"limit": 2})).json()
    assert [t["taskId"] for t in page["tasks"]] == ids[::-1][:2]
    # A task created between pages does not shift the next page.
    await api.post("/api/v1/tasks", json={"prompt": "late"})
    second = await api.get("/api/v1/tasks", params={"limit": 2, "cursor": page["nextCursor"]})
    assert [t["taskId"] for t in second.json()["tasks"]] == ids[::-1][2:4]
    third = await api.get(
        "/api/v1/tasks", params={"limit": 2, "cursor": second.json()["nextCursor"]}
    )
    assert [t["taskId"] for t in third.json()["tasks"]] == ids[:1]
    assert third.json()["nextCursor"] is None
    creating = (await api.get("/api/v1/tasks", params={"status": "completed"})).json()
    assert creating["tasks"] == []
    bad = await api.get("/api/v1/tasks", params={"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"


async def test_messages_to_a_creating_task_are_refused(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/v1/tasks", json={"prompt": "x"})).json()["taskId"]
    response = await api.post(f"/api/v1/tasks/{task_id}/messages", json={"text": "more"})
    assert response.status_code == 409 and response.json()["code"] == "task_not_ready"


def test_branch_names_follow_gits_rules() -> None:
    for good in ["main", "feature/x", "outrider/fix-1", "v1.2"]:
        assert is_valid_ref_name(good), good
    for bad in [
        "",
        "-x",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "x.lock",
        "a//b",
        "/a",
        "a/",
        ".hidden",
        "a@{1}",
        "a\\b",
        "a*",
    ]:
        assert not is_valid_ref_name(bad), bad


async def test_the_openapi_document_describes_the_task_api(api: httpx.AsyncClient) -> None:
    document = (await api.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/messages",
        "/api/v1/tasks/{task_id}/events",
        "/api/v1/tasks/{task_id}/stop",
    ]:
        assert path in paths
    assert "examples" in json.dumps(document["components"]["schemas"]["TaskCreate"])
