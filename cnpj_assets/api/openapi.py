"""The OpenAPI document of `/openapi.json` and the HTML page of `/docs`.

The establishment's schema is made from read/establishment.FIELDS, the list that also
builds the answers, so the document cannot drift from what the API sends.
"""

from __future__ import annotations

import html
from typing import Any

from cnpj_assets.api.search import DEFAULT_LIMIT, FILTERS, LARGEST_LIMIT
from cnpj_assets.read.establishment import FIELDS, Field

_MESSAGE = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}


def _schema(field: Field) -> dict[str, Any]:
    if field.json_type == "array":
        items = {
            "type": "object",
            "properties": {f.name: _schema(f) for f in field.items},
            "required": [f.name for f in field.items],
        }
        return {"type": "array", "items": items}
    return {"type": [field.json_type, "null"]}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _cnpj_parameter(description: str) -> dict[str, Any]:
    return {
        "name": "cnpj",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_ERRORS = {
    "400": _answer("not a valid CNPJ (length, characters or check digits)", _MESSAGE),
    "404": _answer("no such CNPJ in the release", _MESSAGE),
    "503": _answer("the database is unreachable, slow past the timeout, or empty", _MESSAGE),
}


def establishment_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.name: _schema(f) for f in FIELDS},
        "required": [f.name for f in FIELDS],
    }


def _search() -> dict[str, Any]:
    """GET /: the search's parameters, and its page of establishments."""
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": f"{field}: values separated by commas or repeated are alternatives",
            "schema": {"type": "string"},
        }
        for name, field in FILTERS.items()
    ]
    parameters += [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"rows of a page, {DEFAULT_LIMIT} by default, at most {LARGEST_LIMIT}",
            "schema": {"type": "integer", "minimum": 1, "maximum": LARGEST_LIMIT},
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "the cursor of the previous page: the next one, same release",
            "schema": {"type": "string"},
        },
    ]
    page = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Establishment"}},
            "cursor": {"type": ["string", "null"]},
        },
        "required": ["data", "cursor"],
    }
    return {
        "get": {
            "summary": "Search establishments (no parameter: 302 to /docs)",
            "parameters": parameters,
            "responses": {
                "200": _answer(
                    "a page, and the cursor of the next one (null after the last)", page
                ),
                "302": {"description": "no parameter: the docs page"},
                "400": _answer("an unknown parameter, a bad limit or cursor", _MESSAGE),
            },
        }
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    any_document = {"type": "object"}
    paths: dict[str, Any] = {
        "/": _search(),
        "/{cnpj}": {
            "get": {
                "summary": "One establishment, as minha-receita answers it",
                "parameters": [
                    _cnpj_parameter("14 characters, punctuated or not, alphanumeric too"),
                    {
                        "name": "release",
                        "in": "query",
                        "required": False,
                        "description": "a loaded release YYYY-MM (default: the published one)",
                        "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    },
                ],
                "responses": {
                    "200": _answer(
                        "the establishment (header X-Cnpj-Release: its release)",
                        {"$ref": "#/components/schemas/Establishment"},
                    ),
                    **_ERRORS,
                },
            }
        },
        "/{cnpj}/lineage": {
            "get": {
                "summary": "Where every row of the CNPJ came from (`cnpj-assets lineage --json`)",
                "parameters": [_cnpj_parameter("a CNPJ of 14 characters or a base of 8")],
                "responses": {"200": _answer("the lineage", any_document), **_ERRORS},
            }
        },
        "/{cnpj}/history": {
            "get": {
                "summary": "The CNPJ across releases (as `cnpj-assets history --json`)",
                "parameters": [_cnpj_parameter("a CNPJ of 14 characters or a base of 8")],
                "responses": {"200": _answer("the history", any_document), **_ERRORS},
            }
        },
        "/updated": {
            "get": {
                "summary": "Which release is served and since when",
                "responses": {"200": _answer("the served release", _MESSAGE)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Readiness: 200 when the database answers",
                "responses": {"200": _answer("ready", any_document), "503": _ERRORS["503"]},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text: requests, latency, errors, pool, served release",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cnpj-assets API",
            "version": "1",
            "description": "The CNPJ registry in minha-receita's shape, with lineage and history.",
        },
        "paths": paths,
        "components": {"schemas": {"Establishment": establishment_schema()}},
    }


def page(openapi: dict[str, Any]) -> str:
    """A page listing every path and the establishment's fields; no script, no CDN."""
    rows = "".join(
        f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
        f"<td>{html.escape(operation['summary'])}</td></tr>"
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    )
    fields = "".join(
        f"<tr><td><code>{f.name}</code></td><td>{f.json_type} or null</td></tr>"
        if f.json_type != "array"
        else f"<tr><td><code>{f.name}</code></td><td>array of {{"
        + ", ".join(i.name for i in f.items)
        + "}</td></tr>"
        for f in FIELDS
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>cnpj-assets API</title></head>"
        "<body><h1>cnpj-assets API</h1>"
        "<p>The machine-readable description: <a href='/openapi.json'>/openapi.json</a>.</p>"
        f"<h2>Endpoints</h2><table>{rows}</table>"
        f"<h2>An establishment</h2><table>{fields}</table></body></html>"
    )
