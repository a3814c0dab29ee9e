"""/api/v1/webhooks: account endpoints, signing secrets, the delivery log, redelivery."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from outrider.apikeys.dependencies import require_scope
from outrider.apikeys.schemas import Scope
from outrider.apikeys.service import Principal
from outrider.config import app_settings
from outrider.db import SessionDep
from outrider.webhooks import service
from outrider.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from outrider.webhooks.schemas import (
    AttemptRead,
    DeliveryList,
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointRead,
    EndpointUpdate,
    SecretRead,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Reader = Annotated[Principal, Depends(require_scope(Scope.webhooks_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.webhooks_write))]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Invalid request",
        "content": {
            "application/json": {
                "example": {
                    "error": "url: The host 'localhost' resolves to 127.0.0.1, which is not a "
                    "public address.",
                    "code": "invalid_url",
                }
            }
        },
    },
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such endpoint or delivery (or another user's)"},
}


def delivery_read(delivery: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        webhook_id=delivery.message_id,
        event_type=delivery.event_type,
        task_id=delivery.task_id,
        endpoint_id=delivery.endpoint_id,
        url=delivery.url,
        status=delivery.status,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        attempts=[AttemptRead.model_validate(attempt) for attempt in delivery.attempts],
    )


def _created(endpoint: WebhookEndpoint, secret: str) -> EndpointCreated:
    return EndpointCreated.model_validate(
        {**EndpointRead.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.post("", status_code=201, response_model=EndpointCreated, responses=ERRORS)
async def create_endpoint(
    body: EndpointCreate, request: Request, session: SessionDep, principal: Writer
) -> EndpointCreated:
    """Add an endpoint. The answer holds its signing secret, this once."""
    endpoint, secret = await service.create_endpoint(
        session, app_settings(request), principal.user.id, body
    )
    return _created(endpoint, secret)


@router.get("", response_model=EndpointList)
async def list_endpoints(session: SessionDep, principal: Reader) -> EndpointList:
    endpoints = await service.list_endpoints(session, principal.user.id)
    return EndpointList(endpoints=[EndpointRead.model_validate(e) for e in endpoints])


@router.get("/signing-secret", response_model=SecretRead)
async def signing_secret(request: Request, session: SessionDep, principal: Writer) -> SecretRead:
    """The account secret that signs deliveries to per-task webhookUrls. It reveals a
    secret, so it needs webhooks:write."""
    secret, row = await service.account_secret(session, app_settings(request), principal.user.id)
    return SecretRead(secret=secret, previous_secret_expires_at=row.previous_secret_expires_at)


@router.post("/signing-secret/rotate", response_model=SecretRead)
async def rotate_signing_secret(
    request: Request, session: SessionDep, principal: Writer
) -> SecretRead:
    """A new account secret; the old one keeps signing alongside it for 24 h."""
    secret, row = await service.rotate_account_secret(
        session, app_settings(request), principal.user.id
    )
    return SecretRead(secret=secret, previous_secret_expires_at=row.previous_secret_expires_at)


@router.get("/deliveries", response_model=DeliveryList)
async def list_deliveries(
    session: SessionDep,
    principal: Reader,
    task_id: Annotated[uuid.UUID | None, Query(alias="taskId")] = None,
    endpoint_id: Annotated[uuid.UUID | None, Query(alias="endpointId")] = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeliveryList:
    """Deliveries, newest first, each with its attempts. Pass `nextCursor` back as
    `cursor` for the next page."""
    page, next_cursor = await service.list_deliveries(
        session, principal.user.id, task_id, endpoint_id, status, limit, cursor
    )
    return DeliveryList(deliveries=[delivery_read(d) for d in page], next_cursor=next_cursor)


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202, response_model=DeliveryRead)
async def redeliver(delivery_id: uuid.UUID, session: SessionDep, principal: Writer) -> DeliveryRead:
    """Start a new series of attempts, with the same webhook-id (the receiver's
    idempotency key)."""
    delivery = await service.redeliver(session, principal.user.id, delivery_id)
    return delivery_read(delivery)


@router.get("/{endpoint_id}", response_model=EndpointRead, responses=ERRORS)
async def get_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, principal: Reader
) -> EndpointRead:
    return EndpointRead.model_validate(
        await service.get_endpoint(session, principal.user.id, endpoint_id)
    )


@router.patch("/{endpoint_id}", response_model=EndpointRead, responses=ERRORS)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    request: Request,
    session: SessionDep,
    principal: Writer,
) -> EndpointRead:
    """Change the url, description or events, or enable / disable it."""
    endpoint = await service.update_endpoint(
        session, app_settings(request), principal.user.id, endpoint_id, body
    )
    return EndpointRead.model_validate(endpoint)


@router.delete("/{endpoint_id}", responses=ERRORS)
async def delete_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, principal: Writer
) -> dict[str, bool]:
    await service.delete_endpoint(session, principal.user.id, endpoint_id)
    return {"success": True}


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointCreated, responses=ERRORS)
async def rotate_secret(
    endpoint_id: uuid.UUID, request: Request, session: SessionDep, principal: Writer
) -> EndpointCreated:
    """A new secret, shown once; the old one keeps signing alongside it for 24 h."""
    endpoint, secret = await service.rotate_endpoint_secret(
        session, app_settings(request), principal.user.id, endpoint_id
    )
    return _created(endpoint, secret)
