"""The API keys section of the Settings page (htmx fragments)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from outrider.accounts.dependencies import SignedInDep
from outrider.apikeys import service
from outrider.apikeys.schemas import ApiKeyCreate
from outrider.db import SessionDep
from outrider.web.templating import render

router = APIRouter(prefix="/settings/api-keys", include_in_schema=False)

EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


@router.get("", response_class=HTMLResponse)
async def key_list(request: Request, session: SessionDep, signed_in: SignedInDep) -> Response:
    keys = await service.list_keys(session, signed_in.user.id)
    return render(request, "apikeys/_list.html", {"keys": keys}, signed_in=signed_in)


@router.post("", response_class=HTMLResponse)
async def create_key(
    request: Request,
    session: SessionDep,
    signed_in: SignedInDep,
    name: Annotated[str, Form()] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Annotated[str, Form()] = "",
) -> Response:
    try:
        body = ApiKeyCreate.model_validate(
            {"name": name, "scopes": scopes or None, "expiresInDays": expires_in_days or None}
        )
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        # Retargeted into the dialog, which stays open.
        return render(
            request,
            "apikeys/_create_error.html",
            {"message": f"Couldn't create the key: {message}."},
            signed_in=signed_in,
            status_code=400,
            headers={"HX-Retarget": "#create-key-error", "HX-Reswap": "innerHTML"},
        )
    key, raw = await service.create_key(
        session, signed_in.user.id, body.name, body.scopes, body.expires_in_days
    )
    keys = await service.list_keys(session, signed_in.user.id)
    return render(
        request,
        "apikeys/_created.html",
        {"created": key, "raw_key": raw, "keys": keys},
        signed_in=signed_in,
        status_code=201,
    )


@router.delete("/{key_id}", response_class=HTMLResponse)
async def revoke_key(
    request: Request, key_id: uuid.UUID, session: SessionDep, signed_in: SignedInDep
) -> Response:
    await service.revoke_key(session, key_id, user_id=signed_in.user.id)
    # Whether it was revoked now or before, it is gone: answer with the fresh list.
    keys = await service.list_keys(session, signed_in.user.id)
    return render(request, "apikeys/_list.html", {"keys": keys}, signed_in=signed_in)
