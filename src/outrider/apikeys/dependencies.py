"""The API-key auth dependency: Bearer key, scopes, rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from outrider.apikeys import service
from outrider.apikeys.ratelimit import TokenBucketLimiter
from outrider.apikeys.schemas import Scope
from outrider.apikeys.service import Principal
from outrider.db import SessionDep
from outrider.errors import ApiError


# One answer for every kind of bad key, so a caller learns nothing from which it was.
def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "invalid_api_key",
        "Missing or invalid API key. Send it as 'Authorization: Bearer or_...'.",
        headers={"WWW-Authenticate": 'Bearer realm="outrider"'},
    )


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _authenticated_principal(request: Request, session: SessionDep) -> Principal:
    token = _bearer_token(request)
    principal = await service.authenticate(session, token) if token else None
    if principal is None:
        raise _unauthorized()
    limiter: TokenBucketLimiter = request.app.state.rate_limiter
    decision = limiter.hit(principal.key.id)
    # Read by RateLimitHeadersMiddleware, so errors raised later carry the headers too.
    request.state.rate_limit_headers = decision.headers()
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"Rate limit of {decision.limit} requests a minute exceeded; "
            f"retry in {decision.retry_after_seconds} s.",
        )
    request.state.principal = principal
    return principal


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        principal: Annotated[Principal, Depends(_authenticated_principal)],
    ) -> Principal:
        if not principal.has_scope(scope):
            raise ApiError(
                403,
                "insufficient_scope",
                f"This API key lacks the '{scope.value}' scope.",
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope.value}"'
                },
            )
        return principal

    return dependency


AnyKey = Annotated[Principal, Depends(_authenticated_principal)]
