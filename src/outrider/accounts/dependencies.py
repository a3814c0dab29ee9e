"""Cookie authentication for people, with CSRF protection on every state change."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from outrider.accounts import service
from outrider.accounts.service import SignedIn
from outrider.db import SessionDep
from outrider.errors import ApiError

SESSION_COOKIE = "outrider_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(Exception):
    """No valid web session: HTML routes redirect to the sign-in page, JSON routes get 401."""


async def optional_signed_in(request: Request, session: SessionDep) -> SignedIn | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await service.resolve_session(session, token)


async def _presented_csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FORM_FIELD)
        return value if isinstance(value, str) else None
    return None


async def require_signed_in(
    request: Request,
    signed_in: Annotated[SignedIn | None, Depends(optional_signed_in)],
) -> SignedIn:
    if signed_in is None:
        raise SignInRequired()
    if request.method not in _SAFE_METHODS:
        presented = await _presented_csrf_token(request)
        if not presented or not secrets.compare_digest(presented, signed_in.web_session.csrf_token):
            raise ApiError(
                403, "csrf_failed", "This form has expired. Reload the page and try again."
            )
    return signed_in


SignedInDep = Annotated[SignedIn, Depends(require_signed_in)]
OptionalSignedInDep = Annotated[SignedIn | None, Depends(optional_signed_in)]
