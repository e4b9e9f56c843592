"""The Starlette app of `cnpj-assets serve`: routes, errors and headers over read/.

Every path that is not one of the fixed ones is a CNPJ, as in minha-receita (whose
clients call `/{cnpj}` with the CNPJ punctuated, slash included): `/{cnpj}`,
`/{cnpj}/lineage` and `/{cnpj}/history` are told apart by their last segment. Endpoints
are plain functions (Starlette runs them in its thread pool) because the read/ code they
call, shared with the CLI, is synchronous psycopg.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from cnpj_assets.api import openapi, search
from cnpj_assets.api.metrics import Metrics
from cnpj_assets.api.middleware import AnswerOptions, Observed
from cnpj_assets.api.pool import open_pool
from cnpj_assets.api.settings import Settings
from cnpj_assets.audit.queries import latest_publication
from cnpj_assets.lineage import InvalidCnpj, find_lineage, parse_cnpj
from cnpj_assets.lineage import to_json as lineage_json
from cnpj_assets.one_line_error import OneLineError
from cnpj_assets.read.establishment import find_establishment
from cnpj_assets.read.search import SearchError
from cnpj_assets.releases.history import find_history
from cnpj_assets.releases.history import to_json as history_json

METHODS = ["GET", "HEAD"]
_RELEASE = re.compile(r"\d{4}-\d{2}")
_NO_STORE = {"Cache-Control": "no-store"}


class NotFound(LookupError):
    """The CNPJ is valid but the release has no row of it: 404."""


class NotPublished(LookupError):
    """No release was published yet, so there is nothing to serve: 503."""


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _released_json(text: str, max_age: int) -> Response:
    return Response(
        text,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


class Api:
    """The endpoints, over one connection pool per worker process."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pool: ConnectionPool | None = None
        self.openapi = openapi.document()

    @property
    def connections(self) -> ConnectionPool:
        if self.pool is None:
            raise RuntimeError("the API's pool is opened by the app's lifespan")
        return self.pool

    def _cache(self, release: str | None) -> dict[str, str]:
        """A named release does not change while it is kept; the published one moves monthly."""
        max_age = self.settings.max_age if release is None else 24 * 3600
        return {"Cache-Control": f"public, max-age={max_age}"}

    def root(self, request: Request) -> Response:
        """The search; with no parameter at all, the docs page (as minha-receita)."""
        if not request.query_params:
            return RedirectResponse("/docs", status_code=302)
        wanted = search.parse(request.query_params)
        with self.connections.connection() as connection:
            answer, release = search.page(connection, wanted)
        headers = self._cache(None)
        if release is not None:
            headers["X-Cnpj-Release"] = release
        return JSONResponse(answer, headers=headers)

    def cnpj(self, request: Request) -> Response:
        path: str = request.path_params["path"]
        head, _, last = path.rpartition("/")
        if head and last in ("lineage", "history"):
            return self.lineage(head) if last == "lineage" else self.history(head)
        return self.establishment(path, request.query_params.get("release"))

    def establishment(self, text: str, release: str | None) -> Response:
        query = parse_cnpj(text)
        if query.ordem is None:
            raise InvalidCnpj(f"{text!r} is a CNPJ base; a CNPJ has 14 characters")
        if release is not None and not _RELEASE.fullmatch(release):
            return _message(400, f"release {release!r} is not YYYY-MM")
        with self.connections.connection() as connection:
            found = find_establishment(connection, query, release)
        headers = self._cache(release)
        if found is None:
            where = f"release {release}" if release else "the published release"
            return _message(404, f"CNPJ {query.formatted} not found in {where}", headers)
        headers["X-Cnpj-Release"] = found.release
        return JSONResponse(found.document, headers=headers)

    def lineage(self, text: str) -> Response:
        query = parse_cnpj(text)
        with self.connections.connection() as connection, connection.transaction():
            rows = find_lineage(connection, query)
        if not rows:
            raise NotFound(f"CNPJ {query.formatted} not found in any loaded release")
        return _released_json(lineage_json(query, rows), self.settings.max_age)

    def history(self, text: str) -> Response:
        query = parse_cnpj(text)
        with self.connections.connection() as connection, connection.transaction():
            history = find_history(connection, query)
        if not history.snapshots and not history.changes:
            raise NotFound(f"CNPJ {query.formatted} is in no loaded release")
        return _released_json(history_json(history), self.settings.max_age)

    def _publication(self) -> tuple[str, Any]:
        with self.connections.connection() as connection:
            latest = latest_publication(connection)
        if latest is None:
            raise NotPublished("no release is published yet: load one with cnpj-assets load")
        return latest

    def updated(self, request: Request) -> Response:
        release, since = self._publication()
        return JSONResponse(
            {
                "message": f"release {release} served since {since.isoformat()}",
                "release": release,
                "published_at": since.isoformat(),
            },
            headers={"Cache-Control": "public, max-age=60"},
        )

    def healthz(self, request: Request) -> Response:
        with self.connections.connection() as connection:
            latest = latest_publication(connection)
        release = latest[0] if latest else None
        return JSONResponse({"status": "ok", "release": release}, headers=_NO_STORE)

    def metrics_text(self, request: Request) -> Response:
        try:
            release: str | None = self._publication()[0]
        except (NotPublished, psycopg.Error, PoolTimeout):
            release = None
        text = self.metrics.render(self.connections.get_stats(), release)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4", headers=_NO_STORE)

    def openapi_json(self, request: Request) -> Response:
        return JSONResponse(self.openapi, headers={"Cache-Control": "public, max-age=3600"})

    def docs(self, request: Request) -> Response:
        return HTMLResponse(
            openapi.page(self.openapi), headers={"Cache-Control": "public, max-age=3600"}
        )

    def routes(self) -> list[Route]:
        fixed = {
            "/": self.root,
            "/updated": self.updated,
            "/healthz": self.healthz,
            "/metrics": self.metrics_text,
            "/openapi.json": self.openapi_json,
            "/docs": self.docs,
        }
        return [
            *(Route(path, endpoint, methods=METHODS) for path, endpoint in fixed.items()),
            Route("/{path:path}", self.cnpj, methods=METHODS),
        ]


def _handlers() -> dict[Any, Any]:
    """Every error as minha-receita answers them: a status and {"message": ...}."""

    def http(request: Request, error: HTTPException) -> Response:
        return _message(error.status_code, error.detail, dict(error.headers or {}))

    def invalid(request: Request, error: Exception) -> Response:
        return _message(400, f"invalid CNPJ: {error}")

    def bad_search(request: Request, error: Exception) -> Response:
        return _message(400, str(error))

    def not_found(request: Request, error: Exception) -> Response:
        return _message(404, str(error))

    def unavailable(request: Request, error: Exception) -> Response:
        if isinstance(error, psycopg.errors.QueryCanceled):
            reason = "the query took longer than the statement timeout"
        elif isinstance(error, PoolTimeout):
            reason = "every database connection is busy"
        elif isinstance(error, psycopg.errors.UndefinedTable):
            reason = "no release is published yet"
        elif isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
            reason = (
                "the database lacks what this answer needs (the search's functions are made "
                "by `cnpj-assets load`, the API never writes)"
            )
        else:
            reason = str(error) or "the database is unreachable"
        return _message(503, reason, {"Retry-After": "5", **_NO_STORE})

    return {
        HTTPException: http,
        InvalidCnpj: invalid,
        SearchError: bad_search,
        OneLineError: unavailable,
        NotFound: not_found,
        NotPublished: unavailable,
        PoolTimeout: unavailable,
        psycopg.OperationalError: unavailable,
        psycopg.errors.UndefinedTable: unavailable,
        psycopg.errors.ReadOnlySqlTransaction: unavailable,
    }


def create_app(settings: Settings | None = None) -> Starlette:
    """The app; uvicorn calls it once per worker process (`serve` passes it as a factory)."""
    metrics = Metrics()
    api = Api(settings or Settings.from_environment(), metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        api.pool = open_pool(api.settings)
        try:
            yield
        finally:
            api.pool.close()

    return Starlette(
        routes=api.routes(),
        middleware=[
            Middleware(Observed, metrics=metrics),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "HEAD", "OPTIONS"],
                expose_headers=["X-Cnpj-Release"],
            ),
            Middleware(GZipMiddleware, minimum_size=1024),
            Middleware(AnswerOptions, allow=", ".join([*METHODS, "OPTIONS"])),
        ],
        exception_handlers=_handlers(),
        lifespan=lifespan,
    )
