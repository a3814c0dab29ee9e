"""Webhook delivery end to end: the outbox, the worker's job, signing, the guarded
connection, retries, and a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from outrider.db import sessionmaker
from outrider.models_common import utcnow
from outrider.tasks import service as tasks
from outrider.tasks.models import Task, TaskStatus
from outrider.tasks.schemas import TaskCreate
from outrider.webhooks import service as webhooks
from outrider.webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.support.live import wait_for_status
from tests.support.receiver import Receiver
from tests.webhooks.conftest import add_endpoint, change_status, new_task, server_settings


async def deliveries(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        await api.get("/api/v1/webhooks/deliveries", params=params)
    ).json()["deliveries"]
    return found


async def settled(
    api: httpx.AsyncClient, timeout: float = 20, **params: str
) -> list[dict[str, Any]]:
    """The deliveries matching `params` once none is pending."""
    deadline = time.monotonic() + timeout
    while True:
        found = await deliveries(api, **params)
        if found and all(d["status"] != "pending" for d in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries still pending: {found}")
        await asyncio.sleep(0.2)


async def test_a_completed_task_sends_one_signed_delivery_to_each_target(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await add_endpoint(api, receiver.respond("/endpoint"))
    account_secret = (await api.get("/api/v1/webhooks/signing-secret")).json()["secret"]
    assert account_secret.startswith("whsec_")
    created = await api.post(
        "/api/v1/tasks",
        json={"prompt": "Say hello", "webhookUrl": receiver.respond("/task")},
    )
    task_id = created.json()["taskId"]
    task = await wait_for_status(api, task_id, {"completed", "error"})
    assert task["status"] == "completed", task

    for path, secret in (("/task", account_secret), ("/endpoint", endpoint["secret"])):
        (received,) = await asyncio.to_thread(receiver.wait_for, path, 1)
        body = Webhook(secret).verify(received.body, received.headers)
        assert body == {
            "type": "task.completed",
            "taskId": task_id,
            "status": "completed",
            "repoUrl": None,
            "branch": None,
            "summary": task["summary"],
            "prUrl": None,
            "error": None,
            "completedAt": body["completedAt"],
        }
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["User-Agent"].startswith("Outrider/")
        assert received.headers["X-Webhook-Attempt"] == "1"
        assert received.headers["webhook-id"].startswith("msg_")
        assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 30
    await asyncio.sleep(1.5)  # anything extra would have arrived by now
    assert len(receiver.at("/task")) == 1 and len(receiver.at("/endpoint")) == 1

    logged = await settled(api, taskId=task_id)
    assert {(d["url"], d["status"], d["eventType"]) for d in logged} == {
        (receiver.base_url + "/task", "succeeded", "task.completed"),
        (receiver.base_url + "/endpoint", "succeeded", "task.completed"),
    }
    attempt = logged[0]["attempts"][0]
    assert attempt["responseStatus"] == 200 and attempt["responseBody"] == "answer 200"


async def test_a_failing_receiver_gets_retries_on_the_schedule_with_one_webhook_id(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    await add_endpoint(api, receiver.respond("/fail", 503), ["task.created"])
    task_id = await new_task(db, account.user_id)
    received = await asyncio.to_thread(receiver.wait_for, "/fail", 3)
    # The live server's schedule is "0,1s,2s": three attempts, ±20 % jitter.
    first_gap = received[1].at - received[0].at
    second_gap = received[2].at - received[1].at
    assert 0.75 <= first_gap <= 2.0, first_gap
    assert 1.55 <= second_gap <= 3.5, second_gap
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert [r.headers["X-Webhook-Attempt"] for r in received] == ["1", "2", "3"]
    (delivery,) = await settled(api, taskId=str(task_id))
    assert delivery["status"] == "failed"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [503, 503, 503]
    assert delivery["attempts"][0]["error"] == "HTTP 503"

    # Fixed, the receiver asks for it again: a new series, the same webhook-id.
    receiver.respond("/fail", 200, delay=1)
    again = await api.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    pending = await api.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert pending.status_code == 409 and pending.json()["code"] == "delivery_pending"
    fourth = (await asyncio.to_thread(receiver.wait_for, "/fail", 4))[3]
    assert fourth.headers["webhook-id"] == received[0].headers["webhook-id"]
    assert fourth.headers["X-Webhook-Attempt"] == "4"
    (delivery,) = await settled(api, taskId=str(task_id))
    assert delivery["status"] == "succeeded"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [503, 503, 503, 200]


async def test_a_receiver_that_recovers_gets_the_message_and_retry_after_is_honoured(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    url = receiver.respond("/later", 200, failures=1, fail_status=429)
    receiver.behaviours["/later"].headers = {"Retry-After": "2"}
    await add_endpoint(api, url, ["task.created"])
    task_id = await new_task(db, account.user_id)
    received = await asyncio.to_thread(receiver.wait_for, "/later", 2)
    assert received[1].at - received[0].at >= 1.9  # Retry-After beats the 1 s schedule
    (delivery,) = await settled(api, taskId=str(task_id))
    assert delivery["status"] == "succeeded"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [429, 200]


async def test_410_disables_the_endpoint_and_a_final_4xx_is_not_retried(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    gone = await add_endpoint(api, receiver.respond("/gone", 410), ["task.created"])
    await add_endpoint(api, receiver.respond("/bad", 400), ["task.created"])
    task_id = await new_task(db, account.user_id)
    found = await settled(api, taskId=str(task_id))
    assert {len(d["attempts"]) for d in found} == {1}
    endpoint = (await api.get(f"/api/v1/webhooks/{gone['id']}")).json()
    assert endpoint["enabled"] is False
    assert "410" in endpoint["disabledReason"]
    # A disabled endpoint gets nothing more.
    await new_task(db, account.user_id)
    await asyncio.sleep(1.5)
    assert len(receiver.at("/gone")) == 1 and len(receiver.at("/bad")) == 2


async def test_a_redirect_is_a_failure_and_is_never_followed(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    target = receiver.respond("/target")
    await add_endpoint(
        api, receiver.respond("/moved", 302, headers={"Location": target}), ["task.created"]
    )
    task_id = await new_task(db, account.user_id)
    (delivery,) = await settled(api, taskId=str(task_id))
    assert delivery["status"] == "failed"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [302, 302, 302]
    assert delivery["attempts"][0]["error"] == "Redirects are not followed"
    assert receiver.at("/target") == []


async def test_a_slow_receiver_does_not_delay_another(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    await add_endpoint(api, receiver.respond("/slow", delay=3), ["task.created"])
    await add_endpoint(api, receiver.respond("/fast"), ["task.created"])
    started = time.monotonic()
    for _ in range(8):
        await new_task(db, account.user_id)
    fast = await asyncio.to_thread(receiver.wait_for, "/fast", 8)
    # The fast receiver's eight all arrive while the slow one's first answers are pending.
    assert max(r.at for r in fast) - started < 2.5
    slow = await asyncio.to_thread(receiver.wait_for, "/slow", 8, 30)
    # At most 4 in flight per receiver: the second four arrive only once the first answer.
    arrivals = sorted(r.at - started for r in slow)
    assert arrivals[3] < 2.5 and arrivals[4] >= 2.9, arrivals


async def test_a_repeated_status_change_gives_one_message(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any, engine: Any
) -> None:
    await add_endpoint(api, receiver.respond("/once"), ["task.completed"])
    task_id = await new_task(db, account.user_id)

    # Two workers deciding the same completion at once: one wins.
    async def complete() -> bool:
        async with sessionmaker(engine)() as session:
            return await change_status(session, task_id, TaskStatus.completed, summary="done")

    results = await asyncio.gather(*(complete() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    # And a retried job re-enqueuing the same change (same task.status event) adds nothing.
    task = await db.get(Task, task_id)
    assert task is not None
    assert await webhooks.enqueue_status_change(db, task, 2) == 0
    await db.commit()
    await asyncio.to_thread(receiver.wait_for, "/once", 1)
    await asyncio.sleep(1.5)
    assert len(receiver.at("/once")) == 1
    body = json.loads(receiver.at("/once")[0].body)
    assert body["type"] == "task.completed" and body["summary"] == "done"


async def fail_since_five_days(
    db: AsyncSession, account: Any, endpoint_id: str, days_with_failures: list[float]
) -> None:
    """An endpoint whose failure streak began five days ago, with failed attempts on
    the given days of it (as an old delivery's log)."""
    began = utcnow() - webhooks.AUTO_DISABLE_AFTER
    await db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == uuid.UUID(endpoint_id))
        .values(failing_since=began)
    )
    old = WebhookDelivery(
        id=uuid.uuid4(),
        message_id=f"msg_{uuid.uuid4().hex}",
        user_id=account.user_id,
        endpoint_id=uuid.UUID(endpoint_id),
        url="http://127.0.0.1:9/old",
        event_type=EventType.task_created,
        body="{}",
        status=DeliveryStatus.failed,
        attempt_count=len(days_with_failures),
        series_attempts=len(days_with_failures),
        dedupe_key=f"old:{uuid.uuid4()}",
    )
    db.add(old)
    await db.flush()
    for number, day in enumerate(days_with_failures, 1):
        db.add(
            WebhookAttempt(
                id=uuid.uuid4(),
                delivery_id=old.id,
                number=number,
                attempted_at=began + timedelta(days=day),
                response_status=500,
                duration_ms=3,
                error="HTTP 500",
            )
        )
    await db.commit()


async def endpoint_after_failures(
    api: httpx.AsyncClient, receiver: Receiver, path: str, endpoint_id: str, attempts: int
) -> dict[str, Any]:
    """The endpoint once its new delivery has failed for good."""
    await asyncio.to_thread(receiver.wait_for, path, attempts)
    await settled(api, endpointId=endpoint_id)
    endpoint: dict[str, Any] = (await api.get(f"/api/v1/webhooks/{endpoint_id}")).json()
    return endpoint


async def test_an_endpoint_failing_for_five_days_is_disabled(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    endpoint = await add_endpoint(api, receiver.respond("/down", 500), ["task.created"])
    await fail_since_five_days(db, account, endpoint["id"], [0.1, 1.5, 3.2])
    await new_task(db, account.user_id)
    # Disabled at its first failure: the retries then find it disabled and stop.
    current = await endpoint_after_failures(api, receiver, "/down", endpoint["id"], 1)
    assert current["enabled"] is False
    await asyncio.sleep(2.5)
    assert len(receiver.at("/down")) == 1
    assert "5 days" in current["disabledReason"]


async def test_one_old_failure_and_a_new_one_do_not_disable(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    """Failures must be spread over the five days, not one then silence then one."""
    endpoint = await add_endpoint(api, receiver.respond("/quiet", 500), ["task.created"])
    await fail_since_five_days(db, account, endpoint["id"], [0.1])
    await new_task(db, account.user_id)
    current = await endpoint_after_failures(api, receiver, "/quiet", endpoint["id"], 3)
    assert current["enabled"] is True


async def test_a_delivery_whose_job_was_lost_is_sent_anyway(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    await add_endpoint(api, receiver.respond("/orphan"), ["task.created"])
    task = await tasks.create_task(
        db, server_settings(), account.user_id, TaskCreate(prompt="p"), None
    )
    # As if its job had failed on a bug and been dropped, a minute and more ago.
    await db.execute(
        text(
            "DELETE FROM procrastinate_jobs WHERE task_name = 'deliver_webhook' "
            "AND args ->> 'delivery_id' IN "
            "(SELECT id::text FROM webhook_deliveries WHERE task_id = :task)"
        ),
        {"task": task.id},
    )
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.task_id == task.id)
        .values(next_attempt_at=utcnow() - timedelta(minutes=2))
    )
    await db.commit()
    # The reaper (every 15 s) finds it pending with no job and gives it one.
    (received,) = await asyncio.to_thread(receiver.wait_for, "/orphan", 1, 40)
    assert json.loads(received.body)["taskId"] == str(task.id)


async def test_the_delivery_log_pages_newest_first_and_filters(
    api: httpx.AsyncClient, receiver: Receiver, db: AsyncSession, account: Any
) -> None:
    endpoint = await add_endpoint(api, receiver.respond("/log"), ["task.created"])
    task_ids = [str(await new_task(db, account.user_id)) for _ in range(5)]
    await asyncio.to_thread(receiver.wait_for, "/log", 5)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {
            "limit": "2",
            "endpointId": endpoint["id"],
            **({"cursor": cursor} if cursor else {}),
        }
        page = (await api.get("/api/v1/webhooks/deliveries", params=params)).json()
        seen += [d["taskId"] for d in page["deliveries"]]
        cursor = page["nextCursor"]
    assert seen == task_ids[::-1] and cursor is None
    bad = await api.get("/api/v1/webhooks/deliveries", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    failed = await api.get("/api/v1/webhooks/deliveries", params={"status": "failed"})
    assert failed.json()["deliveries"] == []
