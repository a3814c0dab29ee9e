from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from outrider.app import create_app
from outrider.config import Settings


async def test_healthz_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_is_503_when_the_database_does_not_answer(
    make_settings: Callable[..., Any],
) -> None:
    settings: Settings = make_settings()
    unreachable = "postgresql+psycopg://postgres@/outrider?host=/nonexistent-socket-dir"
    app = create_app(settings, unreachable)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
