"""JSON routes: /api/v1/me (API key) and /api/keys (signed-in people, CSRF-protected)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from outrider.accounts.dependencies import SignedInDep
from outrider.apikeys import service
from outrider.apikeys.dependencies import AnyKey
from outrider.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead, Me
from outrider.db import SessionDep
from outrider.errors import ApiError

public_router = APIRouter(prefix="/api/v1", tags=["account"])
session_router = APIRouter(prefix="/api/keys", include_in_schema=False)


@public_router.get("/me", response_model=Me, response_model_by_alias=True)
async def me(principal: AnyKey) -> Me:
    """The user and the key this request authenticated as. Any scope may call it."""
    return Me.model_validate({"user": principal.user, "key": principal.key})


@session_router.get("", response_model=ApiKeyList)
async def list_keys(session: SessionDep, signed_in: SignedInDep) -> ApiKeyList:
    keys = await service.list_keys(session, signed_in.user.id)
    return ApiKeyList(keys=[ApiKeyRead.model_validate(key) for key in keys])


@session_router.post("", response_model=ApiKeyCreated, status_code=201)
async def create_key(
    body: ApiKeyCreate, session: SessionDep, signed_in: SignedInDep
) -> ApiKeyCreated:
    key, raw = await service.create_key(
        session, signed_in.user.id, body.name, body.scopes, body.expires_in_days
    )
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(key).model_dump(), "key": raw})


@session_router.delete("/{key_id}")
async def revoke_key(
    key_id: uuid.UUID, session: SessionDep, signed_in: SignedInDep
) -> dict[str, bool]:
    if not await service.revoke_key(session, key_id, user_id=signed_in.user.id):
        raise ApiError(404, "not_found", "No such API key.")
    return {"success": True}
