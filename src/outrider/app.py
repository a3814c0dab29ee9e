"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from outrider import __version__
from outrider.accounts import web as accounts_web
from outrider.accounts.dependencies import SignInRequired
from outrider.apikeys import api as apikeys_api
from outrider.apikeys import web as apikeys_web
from outrider.apikeys.middleware import RateLimitHeadersMiddleware
from outrider.apikeys.ratelimit import TokenBucketLimiter
from outrider.config import Settings
from outrider.db import create_engine, sessionmaker
from outrider.errors import error_response, install_error_handlers
from outrider.events.service import EventNotifier
from outrider.tasks import api as tasks_api
from outrider.web import routes as web_routes
from outrider.web.templating import WEB_DIR
from outrider.webhooks import api as webhooks_api
from outrider.webhooks import web as webhooks_web
from outrider.worker.app import libpq_url

API_DESCRIPTION = """\
Send AI coding agents to git repositories and get pull requests back.

Authenticate every request with an API key: `Authorization: Bearer or_...`.
Create keys on the Settings page or with `outrider keys create`.
Errors are `{"error": "<message>", "code": "<machine code>"}`.
"""


def create_app(settings: Settings, url: str) -> FastAPI:
    """Build the app for the database at `url` (already migrated)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(url)
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker(engine)
        app.state.notifier = EventNotifier(libpq_url(url))
        try:
            yield
        finally:
            await app.state.notifier.stop()
            await engine.dispose()

    app = FastAPI(
        title="Outrider",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    # Resolved now, so a missing or unreadable secret fails at start-up, not mid-request.
    app.state.secret_key = settings.resolved_secret_key
    app.state.rate_limiter = TokenBucketLimiter(settings.rate_limit_per_minute)
    install_error_handlers(app)
    app.add_middleware(RateLimitHeadersMiddleware)

    @app.exception_handler(SignInRequired)
    async def _sign_in_required(request: Request, _: SignInRequired) -> Response:
        if request.headers.get("hx-request"):
            # htmx follows HX-Redirect: an expired session lands on the sign-in page.
            return error_response(
                401, "sign_in_required", "Sign in to continue.", headers={"HX-Redirect": "/signin"}
            )
        if request.url.path.startswith("/api/"):
            return error_response(401, "sign_in_required", "Sign in to continue.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        try:
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    app.include_router(tasks_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(apikeys_api.public_router)
    app.include_router(apikeys_api.session_router)
    app.include_router(accounts_web.router)
    app.include_router(apikeys_web.router)
    app.include_router(webhooks_web.router)
    app.include_router(web_routes.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    return app
