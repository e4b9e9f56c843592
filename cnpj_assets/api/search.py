"""`GET /?uf=&municipio=&cnae=&natureza_juridica=&cnpf=&limit=&cursor=`: minha-receita's
search, over read/search.py.

The HTTP parameters map onto the search's filters: the values of one parameter (repeated,
or separated by commas) are alternatives, parameters all hold. A page is one transaction
(one snapshot): the search's page of CNPJs, then each establishment's answer from the
same release, which the cursor pins for the next pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.datastructures import QueryParams

from cnpj_assets.read.establishment import find_establishments
from cnpj_assets.read.search import MAX_LIMIT, SearchError, SearchFilters, search_page

FILTERS = {
    "uf": "uf",
    "municipio": "municipio",
    "cnae": "cnae",
    "natureza_juridica": "natureza",
    "cnpf": "socio",
}
"""HTTP parameter -> SearchFilters field."""
NOT_YET = {
    "cnae_fiscal": "cnae_fiscal (the principal activity only) is not supported yet; "
    "cnae matches the principal or a secondary activity",
}
DEFAULT_LIMIT, LARGEST_LIMIT = 256, 1024


@dataclass(frozen=True)
class SearchRequest:
    filters: SearchFilters
    limit: int
    cursor: str | None


def _values(params: QueryParams, name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in params.getlist(name) for v in raw.split(",") if v.strip())


def parse(params: QueryParams) -> SearchRequest:
    """The search asked for; SearchError (a 400) for what cannot be searched."""
    for name in params:
        if name in NOT_YET:
            raise SearchError(NOT_YET[name])
        if name not in (*FILTERS, "limit", "cursor"):
            raise SearchError(f"unknown parameter {name!r}; the search takes {', '.join(FILTERS)}")
    text = params.get("limit") or str(DEFAULT_LIMIT)
    if not text.isdigit() or not 1 <= int(text) <= LARGEST_LIMIT:
        raise SearchError(f"limit must be a number from 1 to {LARGEST_LIMIT}, not {text!r}")
    filters = SearchFilters(**{field: _values(params, name) for name, field in FILTERS.items()})
    if filters == SearchFilters():
        raise SearchError(f"give at least one of {', '.join(FILTERS)}")
    return SearchRequest(filters, int(text), params.get("cursor") or None)


def page(
    connection: psycopg.Connection, request: SearchRequest
) -> tuple[dict[str, Any], str | None]:
    """{"data": [establishments], "cursor": next or None} and the release it was read from.

    The search pages at most MAX_LIMIT rows; a larger limit gets that many, and a cursor.
    """
    with connection.transaction():
        rows, following = search_page(
            connection, request.filters, min(request.limit, MAX_LIMIT), request.cursor
        )
        release = rows[0]["release"] if rows else None
        data = find_establishments(connection, release, [r["cnpj"] for r in rows]) if rows else []
    return {"data": data, "cursor": following}, release
