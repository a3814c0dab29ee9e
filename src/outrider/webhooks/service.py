"""Webhooks: endpoints and secrets, the outbox written with each status change, the
retry schedule, and the delivery log."""

from __future__ import annotations

import base64
import json
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from outrider import egress
from outrider.config import Settings
from outrider.crypto import SecretBox
from outrider.errors import ApiError
from outrider.models_common import utcnow
from outrider.pagination import newest_first
from outrider.tasks.models import Task, TaskStatus
from outrider.webhooks.models import (
    TERMINAL_EVENTS,
    AccountSigningSecret,
    DeliveryStatus,
    EventType,
    RotatingSecretMixin,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from outrider.webhooks.schemas import EndpointCreate, EndpointUpdate
from outrider.worker.app import app, raw_connection

WEBHOOK_QUEUE = "webhooks"
ROTATION_OVERLAP = timedelta(hours=24)
AUTO_DISABLE_AFTER = timedelta(days=5)
RESPONSE_BODY_LIMIT = 2048
_ENDPOINT_PURPOSE = "webhook endpoint secret"
_ACCOUNT_PURPOSE = "account signing secret"

# --- secrets ----------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@lru_cache(maxsize=4)
def _box(server_secret: bytes) -> SecretBox:
    return SecretBox(server_secret)


def _seal(settings: Settings, secret: str, purpose: str) -> bytes:
    return _box(settings.resolved_secret_key).encrypt(secret, purpose)


def _open(settings: Settings, ciphertext: bytes, purpose: str) -> str:
    return _box(settings.resolved_secret_key).decrypt(ciphertext, purpose)


def _rotate(settings: Settings, row: RotatingSecretMixin, purpose: str) -> str:
    """A new secret; the old one keeps signing alongside it for ROTATION_OVERLAP."""
    secret = new_secret()
    row.previous_secret_ciphertext = row.secret_ciphertext
    row.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
    row.secret_ciphertext = _seal(settings, secret, purpose)
    return secret


def signing_secrets(
    settings: Settings,
    current: bytes,
    previous: bytes | None,
    previous_expires: datetime | None,
    purpose: str,
) -> list[str]:
    """Every secret that signs a delivery now: the current one, and the previous while
    its rotation overlap lasts."""
    found = [_open(settings, current, purpose)]
    if previous and previous_expires and previous_expires > utcnow():
        found.append(_open(settings, previous, purpose))
    return found


async def account_secret_row(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> AccountSigningSecret:
    """The account's signing secret for per-task webhookUrls, made on first need."""
    await session.execute(
        insert(AccountSigningSecret)
        .values(
            user_id=user_id,
            secret_ciphertext=_seal(settings, new_secret(), _ACCOUNT_PURPOSE),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    row = await session.get(AccountSigningSecret, user_id, populate_existing=True)
    assert row is not None
    return row


async def account_secrets(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> list[str]:
    row = await account_secret_row(session, settings, user_id)
    return signing_secrets(
        settings,
        row.secret_ciphertext,
        row.previous_secret_ciphertext,
        row.previous_secret_expires_at,
        _ACCOUNT_PURPOSE,
    )


async def rotate_account_secret(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> tuple[str, AccountSigningSecret]:
    row = await account_secret_row(session, settings, user_id)
    return _rotate(settings, row, _ACCOUNT_PURPOSE), row


async def account_secret(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> tuple[str, AccountSigningSecret]:
    """The account's current signing secret, in the clear, and its row."""
    row = await account_secret_row(session, settings, user_id)
    return _open(settings, row.secret_ciphertext, _ACCOUNT_PURPOSE), row


# --- endpoints --------------------------------------------------------------------


async def create_endpoint(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, body: EndpointCreate
) -> tuple[WebhookEndpoint, str]:
    await egress.accept(settings, body.url, "url")
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        user_id=user_id,
        url=body.url,
        description=(body.description or "").strip() or None,
        events=[event.value for event in body.events],
        enabled=True,
        secret_ciphertext=_seal(settings, secret, _ENDPOINT_PURPOSE),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(session: AsyncSession, user_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.user_id == user_id)
        .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
    )
    return result.all()


async def get_endpoint(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """The user's endpoint; another user's is a 404, exactly like a missing one."""
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.user_id == user_id
        )
    )
    if endpoint is None:
        raise ApiError(404, "not_found", "No such webhook endpoint.")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    if body.url is not None:
        await egress.accept(settings, body.url, "url")
        endpoint.url = body.url
    if "description" in body.model_fields_set:
        endpoint.description = (body.description or "").strip() or None
    if body.events is not None:
        endpoint.events = [event.value for event in body.events]
    if body.enabled is not None:
        endpoint.enabled = body.enabled
        if body.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> None:
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    await session.delete(endpoint)
    await session.flush()


async def rotate_endpoint_secret(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> tuple[WebhookEndpoint, str]:
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    secret = _rotate(settings, endpoint, _ENDPOINT_PURPOSE)
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint, secret


# --- the outbox -------------------------------------------------------------------

_EVENT_OF_STATUS = {
    TaskStatus.creating: EventType.task_created,
    TaskStatus.active: EventType.task_active,
    TaskStatus.completed: EventType.task_completed,
    TaskStatus.error: EventType.task_error,
    TaskStatus.terminated: EventType.task_terminated,
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def payload(task: Task, event_type: EventType, now: datetime) -> str:
    """The body: flat like the original WebhookPayload, with the type added."""
    body: dict[str, Any] = {
        "type": event_type.value,
        "taskId": str(task.id),
        "status": task.status.value,
        "repoUrl": task.repo_url,
        "branch": task.branch,
        "summary": task.summary,
        "prUrl": task.pr_url,
        "error": task.error,
    }
    if event_type in TERMINAL_EVENTS:
        body["completedAt"] = _iso(task.completed_at or now)
    else:
        body["timestamp"] = _iso(now)
    return json.dumps(body, separators=(",", ":"))


async def enqueue_status_change(session: AsyncSession, task: Task, status_seq: int) -> int:
    """Write one delivery per target for this status change, and defer its job, in the
    caller's transaction. `status_seq` (the task.status event's number) names the change,
    so repeats upstream find the rows already there and add nothing. Returns how many."""
    event_type = _EVENT_OF_STATUS[task.status]
    now = utcnow()
    targets: list[tuple[uuid.UUID | None, str]] = []
    if task.webhook_url and event_type in TERMINAL_EVENTS:
        targets.append((None, task.webhook_url))
    endpoints = await session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.user_id == task.user_id,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.events.contains([event_type.value]),
        )
    )
    targets += [(endpoint.id, endpoint.url) for endpoint in endpoints]
    if not targets:
        return 0
    body = payload(task, event_type, now)
    rows = [
        {
            "id": uuid.uuid4(),
            "message_id": f"msg_{uuid.uuid4().hex}",
            "user_id": task.user_id,
            "task_id": task.id,
            "endpoint_id": endpoint_id,
            "url": url,
            "event_type": event_type,
            "body": body,
            "status": DeliveryStatus.pending,
            "attempt_count": 0,
            "series_attempts": 0,
            "next_attempt_at": now,
            "dedupe_key": f"{task.id}:{status_seq}:{endpoint_id or 'task'}",
            "created_at": now,
            "updated_at": now,
        }
        for endpoint_id, url in targets
    ]
    inserted = await session.scalars(
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(WebhookDelivery.id)
    )
    created = list(inserted)
    for delivery_id in created:
        await defer_attempt(session, delivery_id, 0)
    return len(created)


async def defer_attempt(session: AsyncSession, delivery_id: uuid.UUID, delay: float) -> None:
    """Schedule the delivery's next attempt, committed with the caller's transaction."""
    deferrer = app.configure_task(
        name="deliver_webhook",
        queue=WEBHOOK_QUEUE,
        schedule_in={"seconds": max(0.0, delay)},
        connection=await raw_connection(session),
    )
    await deferrer.defer_async(delivery_id=str(delivery_id))


async def redefer_orphans(session: AsyncSession, older_than: timedelta) -> int:
    """Pending deliveries whose job is gone (it failed on an unexpected error, or was
    lost) get a new one: while attempts remain, a message is never dropped."""
    orphans = await session.scalars(
        text(
            """
            SELECT d.id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at < now() - :older_than
              AND NOT EXISTS (
                SELECT 1 FROM procrastinate_jobs j
                WHERE j.task_name = 'deliver_webhook' AND j.status IN ('todo', 'doing')
                  AND j.args ->> 'delivery_id' = d.id::text)
            ORDER BY d.next_attempt_at
            LIMIT 500
            FOR UPDATE OF d SKIP LOCKED
            """
        ),
        {"older_than": older_than},
    )
    found = list(orphans)
    for delivery_id in found:
        await defer_attempt(session, delivery_id, 0)
    return len(found)


# --- the retry schedule -----------------------------------------------------------

JITTER = 0.2


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - now).total_seconds())


def next_wait(
    schedule: Sequence[float], attempts_made: int, retry_after: float | None
) -> float | None:
    """Seconds until the next attempt, or None when the schedule is used up. Waits get
    ±20 % jitter, so receivers recovering from an outage are not hit in lockstep;
    Retry-After is honoured up to the schedule's longest wait."""
    if attempts_made >= len(schedule):
        return None
    wait = schedule[attempts_made] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
    if retry_after is not None:
        wait = max(wait, min(retry_after, max(schedule)))
    return wait


# Final 4xx answers, except those that mean "try again later".
_RETRYABLE_4XX = {408, 409, 425, 429}


def is_final_failure(status_code: int) -> bool:
    return 400 <= status_code < 500 and status_code not in _RETRYABLE_4XX


# --- the delivery log -------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    user_id: uuid.UUID,
    task_id: uuid.UUID | None = None,
    endpoint_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[Sequence[WebhookDelivery], str | None]:
    """A page of the user's deliveries, newest first, with their attempts."""
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.user_id == user_id)
        .options(selectinload(WebhookDelivery.attempts))
    )
    if task_id is not None:
        statement = statement.where(WebhookDelivery.task_id == task_id)
    if endpoint_id is not None:
        statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return await newest_first(
        session, statement, WebhookDelivery.created_at, WebhookDelivery.id, limit, cursor
    )


async def redeliver(
    session: AsyncSession, user_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """A new series of attempts for a finished delivery, with the same webhook-id."""
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.user_id == user_id)
        .options(selectinload(WebhookDelivery.attempts))
        .with_for_update()
    )
    if delivery is None:
        raise ApiError(404, "not_found", "No such delivery.")
    if delivery.status is DeliveryStatus.pending:
        raise ApiError(409, "delivery_pending", "This delivery still has an attempt scheduled.")
    if delivery.endpoint_id is not None:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is not None and not endpoint.enabled:
            raise ApiError(
                409, "endpoint_disabled", "Enable the endpoint before redelivering to it."
            )
    now = utcnow()
    delivery.status = DeliveryStatus.pending
    delivery.series_attempts = 0
    delivery.next_attempt_at = now
    delivery.updated_at = now
    await session.flush()
    await defer_attempt(session, delivery.id, 0)
    return delivery


# --- attempts (the delivery job's database side) ----------------------------------


@dataclass(frozen=True)
class Message:
    """What one attempt sends: read as plain columns, not ORM objects (the hot path)."""

    id: uuid.UUID
    message_id: str  # webhook-id
    user_id: uuid.UUID
    task_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None
    url: str
    body: str
    attempt_count: int
    series_attempts: int


@dataclass(frozen=True)
class DueAttempt:
    delivery: Message
    secrets: list[str]
    target_key: str  # one receiver, for its concurrency slots
    failing_since: datetime | None  # of its endpoint


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    body: str | None
    error: str | None
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def due_attempt(
    session: AsyncSession, settings: Settings, delivery_id: uuid.UUID
) -> DueAttempt | None:
    """What the next attempt needs, or None when there is nothing to send: the delivery
    is settled (a repeated job), or its endpoint was disabled (then it fails)."""
    deliveries = cast(Table, WebhookDelivery.__table__)
    endpoints = cast(Table, WebhookEndpoint.__table__)
    message_columns = [getattr(deliveries.c, name) for name in Message.__dataclass_fields__]
    row = (
        await session.execute(
            select(
                *message_columns,
                deliveries.c.status,
                endpoints.c.enabled,
                endpoints.c.secret_ciphertext,
                endpoints.c.previous_secret_ciphertext,
                endpoints.c.previous_secret_expires_at,
                endpoints.c.failing_since,
            )
            .select_from(
                deliveries.outerjoin(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
            )
            .where(deliveries.c.id == delivery_id)
        )
    ).first()
    if row is None or row.status != DeliveryStatus.pending:
        return None
    message = Message(*row[: len(message_columns)])
    if message.endpoint_id is None:
        signing = await account_secrets(session, settings, message.user_id)
        return DueAttempt(message, signing, f"url:{urlsplit(message.url).netloc}", None)
    if not row.enabled:  # disabled, or deleted (no endpoint joined)
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status=DeliveryStatus.failed,
                last_error="The endpoint is disabled.",
                next_attempt_at=None,
                updated_at=utcnow(),
            )
        )
        return None
    signing = signing_secrets(
        settings,
        row.secret_ciphertext,
        row.previous_secret_ciphertext,
        row.previous_secret_expires_at,
        _ENDPOINT_PURPOSE,
    )
    return DueAttempt(message, signing, f"endpoint:{message.endpoint_id}", row.failing_since)


async def record_attempt(
    session: AsyncSession,
    schedule: Sequence[float],
    due: DueAttempt,
    result: AttemptResult,
) -> str:
    """Store the attempt, settle or reschedule the delivery, and keep the endpoint's
    health, in one transaction: a crash repeats an attempt but never loses one.
    Returns the delivery's status after it."""
    now = utcnow()
    delivery = due.delivery
    final = result.status_code is not None and is_final_failure(result.status_code)
    wait = None
    if not (result.succeeded or final):
        wait = next_wait(schedule, delivery.series_attempts + 1, result.retry_after)
    if result.succeeded:
        status, next_attempt = DeliveryStatus.succeeded, None
    elif wait is None:
        status, next_attempt = DeliveryStatus.failed, None
    else:
        status, next_attempt = DeliveryStatus.pending, now + timedelta(seconds=wait)
    # Core statements on the tables: this runs once per attempt, and the ORM's unit of
    # work was most of a delivery's CPU. Counted only while still pending, so a
    # repeated job's late answer changes nothing.
    deliveries = cast(Table, WebhookDelivery.__table__)
    attempt_number = await session.scalar(
        update(deliveries)
        .where(deliveries.c.id == delivery.id, deliveries.c.status == DeliveryStatus.pending)
        .values(
            attempt_count=deliveries.c.attempt_count + 1,
            series_attempts=deliveries.c.series_attempts + 1,
            status=status,
            next_attempt_at=next_attempt,
            last_error=result.error,
            updated_at=now,
        )
        .returning(deliveries.c.attempt_count)
    )
    if attempt_number is None:
        return "repeated"
    await session.execute(
        insert(cast(Table, WebhookAttempt.__table__)).values(
            id=uuid.uuid4(),
            delivery_id=delivery.id,
            number=attempt_number,
            attempted_at=result.started_at,
            response_status=result.status_code,
            duration_ms=result.duration_ms,
            response_body=result.body[:RESPONSE_BODY_LIMIT] if result.body is not None else None,
            error=result.error,
        )
    )
    if wait is not None:
        await defer_attempt(session, delivery.id, wait)
    if delivery.endpoint_id is not None and (due.failing_since is not None or not result.succeeded):
        await _endpoint_health(session, delivery.endpoint_id, result.status_code, now)
    return status.value


# Failing for 5 days means failures on this many distinct days of the streak, so one old
# failure and one new one, with silence between, do not disable an endpoint.
FAILING_DAYS_TO_DISABLE = 3


async def _failures_spread(session: AsyncSession, endpoint_id: uuid.UUID, since: datetime) -> bool:
    """Whether this endpoint's failed attempts since `since` (this one included, which
    is being written) fall on enough distinct days."""
    days = await session.scalar(
        text(
            """
            SELECT count(DISTINCT floor(extract(epoch FROM a.attempted_at - :since) / 86400))
            FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = :endpoint AND a.attempted_at >= :since
              AND (a.response_status IS NULL OR a.response_status NOT BETWEEN 200 AND 299)
            """
        ),
        {"endpoint": endpoint_id, "since": since},
    )
    return int(days or 0) >= FAILING_DAYS_TO_DISABLE


async def _endpoint_health(
    session: AsyncSession, endpoint_id: uuid.UUID, status_code: int | None, now: datetime
) -> None:
    """A success clears the failure streak; 410, or failing for 5 days, disables."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        return
    if status_code is not None and 200 <= status_code < 300:
        endpoint.failing_since = None
    elif status_code == 410:
        endpoint.enabled = False
        endpoint.disabled_reason = "The receiver answered 410 Gone."
        endpoint.updated_at = now
    elif endpoint.failing_since is None:
        endpoint.failing_since = now
    elif now - endpoint.failing_since >= AUTO_DISABLE_AFTER and await _failures_spread(
        session, endpoint_id, endpoint.failing_since
    ):
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"Every delivery failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
            "(5 days); enable it again once the receiver works."
        )
        endpoint.updated_at = now
