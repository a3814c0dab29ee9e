"""Sign up, sign in, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from outrider.accounts import service
from outrider.accounts.dependencies import SESSION_COOKIE, OptionalSignedInDep, SignedInDep
from outrider.accounts.models import User
from outrider.config import app_settings
from outrider.db import SessionDep
from outrider.errors import ApiError
from outrider.web.templating import render

router = APIRouter(include_in_schema=False)


def _require_same_origin(request: Request) -> None:
    # Sign-in and sign-up carry no session yet; an Origin check stops login CSRF.
    origin = request.headers.get("origin")
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin and origin != "null" and origin != expected:
        raise ApiError(403, "csrf_failed", "Cross-site form submissions are refused.")


def _safe_next(next_url: str | None) -> str:
    # Only local paths: an open redirect would let a link bounce people elsewhere.
    if next_url and next_url.startswith("/") and not next_url.startswith(("//", "/\\")):
        return next_url
    return "/"


async def _signed_in_redirect(
    request: Request, session: SessionDep, user: User, next_url: str | None
) -> Response:
    token, _ = await service.start_session(
        session, user, app_settings(request), request.headers.get("user-agent")
    )
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=app_settings(request).session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request, session: SessionDep, signed_in: OptionalSignedInDep, next: str | None = None
) -> Response:
    if signed_in:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(
        request,
        "accounts/signin.html",
        {
            "next": next or "",
            "signup_open": await service.signup_open(session, app_settings(request)),
        },
    )


@router.post("/signin", response_class=HTMLResponse)
async def signin(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    _require_same_origin(request)
    client_ip = request.client.host if request.client else None
    try:
        user = await service.authenticate(session, email, password, client_ip)
    except service.AccountError as error:
        status = 429 if isinstance(error, service.SignInThrottled) else 400
        headers = (
            {"Retry-After": str(error.retry_after_seconds)}
            if isinstance(error, service.SignInThrottled)
            else None
        )
        return render(
            request,
            "accounts/signin.html",
            {
                "error": str(error),
                "email": email,
                "next": next,
                "signup_open": await service.signup_open(session, app_settings(request)),
            },
            status_code=status,
            headers=headers,
        )
    return await _signed_in_redirect(request, session, user, next)


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(
    request: Request, session: SessionDep, signed_in: OptionalSignedInDep
) -> Response:
    if signed_in:
        return RedirectResponse("/", status_code=303)
    is_open = await service.signup_open(session, app_settings(request))
    return render(request, "accounts/signup.html", {"signup_open": is_open})


@router.post("/signup", response_class=HTMLResponse)
async def signup(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    _require_same_origin(request)
    if not await service.signup_open(session, app_settings(request)):
        return render(request, "accounts/signup.html", {"signup_open": False}, status_code=403)
    try:
        user = await service.create_user(session, email, password)
    except service.AccountError as error:
        return render(
            request,
            "accounts/signup.html",
            {"signup_open": True, "error": str(error), "email": email},
            status_code=400,
        )
    return await _signed_in_redirect(request, session, user, "/")


@router.post("/signout")
async def signout(request: Request, session: SessionDep, signed_in: SignedInDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await service.end_session(session, token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
