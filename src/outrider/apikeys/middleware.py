"""Puts the RateLimit-* headers on every API-key-authenticated response, errors included."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RateLimitHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: dict[str, str] | None = state.get("rate_limit_headers")
                if extra:
                    headers = [
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.decode().lower() not in {k.lower() for k in extra}
                    ]
                    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
