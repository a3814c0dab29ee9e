"""Jinja2 set-up shared by every HTML route."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from outrider import __version__
from outrider.accounts.service import SignedIn
from outrider.models_common import utcnow

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=WEB_DIR / "templates")


def relative_time(moment: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5m ago', '3h ago', '2d ago', then the date; 'Never' for None."""
    if moment is None:
        return "Never"
    seconds = ((now or utcnow()) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return moment.strftime("%Y-%m-%d")


def iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


templates.env.filters["relative_time"] = relative_time
templates.env.filters["date"] = lambda moment: moment.strftime("%Y-%m-%d") if moment else "Never"
templates.env.filters["iso"] = iso
templates.env.globals["version"] = __version__


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    signed_in: SignedIn | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "signed_in": signed_in,
        "csrf_token": signed_in.web_session.csrf_token if signed_in else "",
    }
    values.update(context or {})
    return templates.TemplateResponse(
        request, template, values, status_code=status_code, headers=headers
    )
