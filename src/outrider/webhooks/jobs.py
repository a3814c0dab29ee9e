"""The delivery job: one attempt of one webhook message, then its next attempt scheduled
in the same transaction that records this one."""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from outrider import __version__, egress
from outrider.config import IPNetwork
from outrider.models_common import utcnow
from outrider.webhooks import service
from outrider.worker import runtime
from outrider.worker.app import app

log = logging.getLogger(__name__)

BUSY_RETRY_SECONDS = 1.0


def signature_header(secrets: list[str], message_id: str, moment: datetime, body: str) -> str:
    """Standard Webhooks signatures, space-separated while a secret rotates."""
    return " ".join(Webhook(secret).sign(message_id, moment, body) for secret in secrets)


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
    delivery: service.Message,
    secrets: list[str],
    allowed: tuple[IPNetwork, ...],
    timeout: float,
) -> service.AttemptResult:
    """One signed, guarded POST; whatever happens becomes a result, never an exception."""
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

    def result(
        status_code: int | None = None,
        body: str | None = None,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> service.AttemptResult:
        duration_ms = int((time.perf_counter() - started) * 1000)
        return service.AttemptResult(moment, duration_ms, status_code, body, error, retry_after)

    try:
        response = await egress.post(
            client, delivery.url, allowed, delivery.body.encode(), headers, timeout
        )
    except egress.EgressRefused as error:
        return result(error=f"Refused by the egress guard: {error}")
    except httpx.TimeoutException:
        return result(error=f"Timed out after {timeout:.0f} s")
    except httpx.HTTPError as error:
        return result(error=f"Connection failed: {error}")
    problem = None
    if 300 <= response.status_code < 400:
        problem = "Redirects are not followed"
    elif not response.is_success:
        problem = f"HTTP {response.status_code}"
    return result(
        response.status_code,
        response.text[: service.RESPONSE_BODY_LIMIT],
        problem,
        service.retry_after_seconds(response.headers.get("retry-after"), utcnow()),
    )


@app.task(name="deliver_webhook", queue=service.WEBHOOK_QUEUE)
async def deliver_webhook(delivery_id: str) -> None:
    rt = runtime.current()
    settings = rt.settings
    identifier = uuid.UUID(delivery_id)
    async with rt.sessions() as session, session.begin():
        due = await service.due_attempt(session, settings, identifier)
    if due is None:
        return  # settled already (a repeated job), or its endpoint is disabled
    async with endpoint_slot(due.target_key, settings.webhook_endpoint_concurrency) as ok:
        if not ok:
            # The receiver already has its share in flight: wait without holding a slot.
            async with rt.sessions() as session, session.begin():
                await service.defer_attempt(session, identifier, BUSY_RETRY_SECONDS)
            return
        answer = await send(
            rt.http,
            due.delivery,
            due.secrets,
            settings.allowed_networks,
            settings.webhook_timeout,
        )
    async with rt.sessions() as session, session.begin():
        outcome = await service.record_attempt(
            session,
            settings.webhook_schedule,
            due,
            answer,
        )
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery_id,
            "task_id": str(due.delivery.task_id) if due.delivery.task_id else None,
            "status_code": answer.status_code,
            "error": answer.error,
            "outcome": outcome,
        },
    )
