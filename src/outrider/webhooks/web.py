"""The Webhooks section of the Settings page (htmx fragments)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from outrider.accounts.dependencies import SignedInDep
from outrider.accounts.service import SignedIn
from outrider.config import app_settings
from outrider.db import SessionDep
from outrider.errors import ApiError
from outrider.web.templating import render
from outrider.webhooks import service
from outrider.webhooks.schemas import EndpointCreate, EndpointUpdate

router = APIRouter(prefix="/settings/webhooks", include_in_schema=False)


async def _endpoints(
    request: Request,
    session: SessionDep,
    signed_in: SignedIn,
    template: str = "webhooks/_endpoints.html",
    status_code: int = 200,
    **context: object,
) -> Response:
    """The endpoint list, or a template that carries it (a secret banner)."""
    endpoints = await service.list_endpoints(session, signed_in.user.id)
    return render(
        request,
        template,
        {"endpoints": endpoints, **context},
        signed_in=signed_in,
        status_code=status_code,
    )


@router.get("/endpoints", response_class=HTMLResponse)
async def endpoint_list(request: Request, session: SessionDep, signed_in: SignedInDep) -> Response:
    return await _endpoints(request, session, signed_in)


@router.post("/endpoints", response_class=HTMLResponse)
async def create_endpoint(
    request: Request,
    session: SessionDep,
    signed_in: SignedInDep,
    url: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    events: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        body = EndpointCreate.model_validate(
            {"url": url.strip(), "description": description or None, "events": events or []}
        )
        endpoint, secret = await service.create_endpoint(
            session, app_settings(request), signed_in.user.id, body
        )
    except (ValidationError, ApiError) as error:
        if isinstance(error, ValidationError):
            message = error.errors()[0]["msg"].removeprefix("Value error, ")
        else:
            message = error.message
        return render(
            request,
            "webhooks/_form_error.html",
            {"message": f"Couldn't add the endpoint: {message}"},
            signed_in=signed_in,
            status_code=400,
            headers={"HX-Retarget": "#create-endpoint-error", "HX-Reswap": "innerHTML"},
        )
    return await _endpoints(
        request,
        session,
        signed_in,
        template="webhooks/_secret.html",
        title=f"Endpoint {endpoint.url} added.",
        secret=secret,
        status_code=201,
    )


@router.post("/endpoints/{endpoint_id}/enabled", response_class=HTMLResponse)
async def set_enabled(
    request: Request,
    endpoint_id: uuid.UUID,
    session: SessionDep,
    signed_in: SignedInDep,
    enabled: Annotated[bool, Form()],
) -> Response:
    await service.update_endpoint(
        session,
        app_settings(request),
        signed_in.user.id,
        endpoint_id,
        EndpointUpdate(enabled=enabled),
    )
    return await _endpoints(request, session, signed_in)


@router.post("/endpoints/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate(
    request: Request, endpoint_id: uuid.UUID, session: SessionDep, signed_in: SignedInDep
) -> Response:
    endpoint, secret = await service.rotate_endpoint_secret(
        session, app_settings(request), signed_in.user.id, endpoint_id
    )
    return await _endpoints(
        request,
        session,
        signed_in,
        template="webhooks/_secret.html",
        title=f"New secret for {endpoint.url}. The old one keeps signing for 24 hours.",
        secret=secret,
    )


@router.delete("/endpoints/{endpoint_id}", response_class=HTMLResponse)
async def delete_endpoint(
    request: Request, endpoint_id: uuid.UUID, session: SessionDep, signed_in: SignedInDep
) -> Response:
    with contextlib.suppress(ApiError):  # already gone: the fresh list says so
        await service.delete_endpoint(session, signed_in.user.id, endpoint_id)
    return await _endpoints(request, session, signed_in)


@router.get("/signing-secret", response_class=HTMLResponse)
async def signing_secret(request: Request, session: SessionDep, signed_in: SignedInDep) -> Response:
    secret, row = await service.account_secret(session, app_settings(request), signed_in.user.id)
    return render(
        request,
        "webhooks/_signing_secret.html",
        {"secret": secret, "row": row},
        signed_in=signed_in,
    )


@router.post("/signing-secret/rotate", response_class=HTMLResponse)
async def rotate_signing_secret(
    request: Request, session: SessionDep, signed_in: SignedInDep
) -> Response:
    secret, row = await service.rotate_account_secret(
        session, app_settings(request), signed_in.user.id
    )
    return render(
        request,
        "webhooks/_signing_secret.html",
        {"secret": secret, "row": row, "rotated": True},
        signed_in=signed_in,
    )


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(request: Request, session: SessionDep, signed_in: SignedInDep) -> Response:
    found, _ = await service.list_deliveries(session, signed_in.user.id, limit=20)
    return render(request, "webhooks/_deliveries.html", {"deliveries": found}, signed_in=signed_in)


@router.post("/deliveries/{delivery_id}/redeliver", response_class=HTMLResponse)
async def redeliver(
    request: Request, delivery_id: uuid.UUID, session: SessionDep, signed_in: SignedInDep
) -> Response:
    notice = "Redelivery scheduled."
    try:
        await service.redeliver(session, signed_in.user.id, delivery_id)
    except ApiError as error:
        notice = error.message
    found, _ = await service.list_deliveries(session, signed_in.user.id, limit=20)
    return render(
        request,
        "webhooks/_deliveries.html",
        {"deliveries": found, "notice": notice},
        signed_in=signed_in,
    )
