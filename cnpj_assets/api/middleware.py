"""Two small ASGI layers of the app: metrics of every answer, and OPTIONS answered."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cnpj_assets.api.metrics import Metrics

FIXED = {"/": "search", "/updated": "updated", "/healthz": "healthz", "/metrics": "metrics"}


def route_of(path: str) -> str:
    """A bounded label for the metrics: never the CNPJ itself."""
    if path in FIXED:
        return FIXED[path]
    if path in ("/openapi.json", "/docs"):
        return "docs"
    last = path.rstrip("/").rpartition("/")[2]
    return last if last in ("lineage", "history") else "cnpj"


class Observed:
    """Counts every answer (405s and errors included) and its time, by route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(
                scope["method"], route_of(scope["path"]), status, time.perf_counter() - started
            )


class AnswerOptions:
    """OPTIONS that is not a CORS preflight (CORSMiddleware answers those): 204 and `Allow`."""

    def __init__(self, app: ASGIApp, allow: str) -> None:
        self.app = app
        self.allow = allow.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = [(b"allow", self.allow), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
