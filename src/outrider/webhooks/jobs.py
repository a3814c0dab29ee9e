"""The delivery job: one attempt of one webhook message, then its next attempt scheduled
in the same transaction that records this one."""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from outrider import __version__, egress
from outrider.models_common import utcnow
from outrider.webhooks import service
from outrider.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from outrider.worker import runtime
from outrider.worker.app import app

log = logging.getLogger(__name__)

BUSY_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    body: str | None
    error: str | None
    retry_after: float | None
    duration_ms: int


def signature_header(secrets: list[str], message_id: str, moment: datetime, body: str) -> str:
    """Standard Webhooks signatures, space-separated while a secret rotates."""
    return " ".join(Webhook(secret).sign(message_id, moment, body) for secret in secrets)


def _target_key(delivery: WebhookDelivery) -> str:
    if delivery.endpoint_id is not None:
        return f"endpoint:{delivery.endpoint_id}"
    return f"url:{httpx.URL(delivery.url).netloc.decode()}"


@asynccontextmanager
async def endpoint_slot(key: str, slots: int) -> AsyncIterator[bool]:
    """One of `slots` concurrent deliveries to one receiver, as a session advisory lock:
    a dead worker's connection closes and the slot frees itself. Yields False when all
    are taken, and the caller tries again shortly instead of holding a worker slot."""
    rt = runtime.current()
    group = zlib.crc32(key.encode()) - 2**31  # int4, as pg_try_advisory_lock wants
    async with rt.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        held: int | None = None
        for slot in range(slots):
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:group, :slot)"),
                {"group": group, "slot": slot},
            )
            if locked:
                held = slot
                break
        try:
            yield held is not None
        finally:
            if held is not None:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:group, :slot)"),
                    {"group": group, "slot": held},
                )


async def send(
    client: httpx.AsyncClient,
    delivery: WebhookDelivery,
    secrets: list[str],
    allowed: tuple[egress.IPNetwork, ...],
    timeout: float,
) -> Answer:
    moment = utcnow()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Outrider/{__version__}",
        "X-Webhook-Attempt": str(delivery.attempt_count + 1),
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature_header(secrets, delivery.message_id, moment, delivery.body),
    }
    started = time.perf_counter()
    try:
        response = await egress.post(
            client, delivery.url, allowed, delivery.body.encode(), headers, timeout
        )
    except egress.EgressRefused as error:
        return Answer(None, None, f"Refused by the egress guard: {error}", None, _ms(started))
    except httpx.TimeoutException:
        return Answer(None, None, f"Timed out after {timeout:.0f} s", None, _ms(started))
    except httpx.HTTPError as error:
        return Answer(None, None, f"Connection failed: {error}", None, _ms(started))
    body = response.text[: service.RESPONSE_BODY_LIMIT]
    retry_after = service.retry_after_seconds(response.headers.get("retry-after"), utcnow())
    problem = None
    if 300 <= response.status_code < 400:
        problem = "Redirects are not followed"
    elif not response.is_success:
        problem = f"HTTP {response.status_code}"
    return Answer(response.status_code, body, problem, retry_after, _ms(started))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


@app.task(name="deliver_webhook", queue=service.WEBHOOK_QUEUE)
async def deliver_webhook(delivery_id: str) -> None:
    rt = runtime.current()
    settings = rt.settings
    identifier = uuid.UUID(delivery_id)
    async with rt.sessions() as session, session.begin():
        row = (
            await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id == identifier)
            )
        ).first()
        if row is None or row[0].status is not DeliveryStatus.pending:
            return  # a repeated job: its delivery was already settled
        delivery, endpoint = row
        if delivery.endpoint_id is not None:
            if endpoint is None or not endpoint.enabled:
                delivery.status = DeliveryStatus.failed
                delivery.last_error = "The endpoint is disabled."
                delivery.next_attempt_at = None
                return
            secrets = service.endpoint_secrets(settings, endpoint)
        else:
            secrets = await service.account_secrets(session, settings, delivery.user_id)
    async with endpoint_slot(_target_key(delivery), settings.webhook_endpoint_concurrency) as ok:
        if not ok:
            # The receiver already has its share in flight: wait without holding a slot.
            async with rt.sessions() as session, session.begin():
                await service.defer_attempt(session, identifier, BUSY_RETRY_SECONDS)
            return
        started_at = utcnow()
        answer = await send(
            rt.http,
            delivery,
            secrets,
            egress.parse_allowed_cidrs(settings.allowed_private_cidrs),
            settings.webhook_timeout,
        )
    failing_since = endpoint.failing_since if endpoint is not None else None
    await _record(delivery, answer, started_at, failing_since)


async def _record(
    delivery: WebhookDelivery,
    answer: Answer,
    started_at: datetime,
    failing_since: datetime | None,
) -> None:
    """Store the attempt, settle or reschedule the delivery, and keep the endpoint's
    health: all in one transaction, so a crash repeats an attempt but never loses one."""
    rt = runtime.current()
    now = utcnow()
    succeeded = answer.status_code is not None and 200 <= answer.status_code < 300
    final = answer.status_code is not None and service.is_final_failure(answer.status_code)
    async with rt.sessions() as session, session.begin():
        # Counted only while still pending: a repeated job's late answer changes nothing.
        counted = (
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status == DeliveryStatus.pending,
                )
                .values(
                    attempt_count=WebhookDelivery.attempt_count + 1,
                    series_attempts=WebhookDelivery.series_attempts + 1,
                    updated_at=now,
                    last_error=answer.error,
                )
                .returning(WebhookDelivery.attempt_count, WebhookDelivery.series_attempts)
            )
        ).first()
        if counted is None:
            return
        attempt_number, series_attempts = counted
        session.add(
            service.new_attempt(
                delivery.id,
                attempt_number,
                started_at,
                answer.duration_ms,
                answer.status_code,
                answer.body,
                answer.error,
            )
        )
        wait = (
            None
            if succeeded or final
            else service.next_wait(
                rt.settings.webhook_schedule, series_attempts, answer.retry_after
            )
        )
        if succeeded:
            status, next_attempt = DeliveryStatus.succeeded, None
        elif wait is None:
            status, next_attempt = DeliveryStatus.failed, None
        else:
            status, next_attempt = DeliveryStatus.pending, now + timedelta(seconds=wait)
            await service.defer_attempt(session, delivery.id, wait)
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(status=status, next_attempt_at=next_attempt)
        )
        if delivery.endpoint_id is not None and (failing_since is not None or not succeeded):
            await _endpoint_health(session, delivery.endpoint_id, answer.status_code, now)


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
    elif now - endpoint.failing_since >= service.AUTO_DISABLE_AFTER:
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"Every delivery failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
            "(5 days); enable it again once the receiver works."
        )
        endpoint.updated_at = now
