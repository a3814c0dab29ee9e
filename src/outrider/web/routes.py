"""Page shells: the home page and the Settings page, whose sections load by htmx."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from outrider.accounts.dependencies import OptionalSignedInDep, SignedInDep
from outrider.apikeys.schemas import ALL_SCOPES
from outrider.apikeys.web import EXPIRY_CHOICES
from outrider.web.templating import render
from outrider.webhooks.models import TERMINAL_EVENTS, EventType

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(signed_in: OptionalSignedInDep) -> Response:
    return RedirectResponse("/settings" if signed_in else "/signin", status_code=303)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, signed_in: SignedInDep) -> Response:
    return render(
        request,
        "settings.html",
        {
            "scopes": [scope.value for scope in ALL_SCOPES],
            "expiry_choices": EXPIRY_CHOICES,
            "server_url": str(request.base_url).rstrip("/"),
            "event_types": [event.value for event in EventType],
            "default_events": [event.value for event in TERMINAL_EVENTS],
        },
        signed_in=signed_in,
    )
