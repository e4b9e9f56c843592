"""`cnpj_current.search(...)`: the CLI's search for psql users, over the published release.

Made at each publication beside the `cnpj_current` views, with the release written in
as they have it, so it moves with them in the same transaction. Its body is
`search.function_body`: the very query of the CLI and the API, each filter an argument
(NULL filters nothing). It is a plain SQL function, so PostgreSQL inlines it into the
caller's query and plans it with the arguments given, indexes included.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.read.search import COLUMNS, FUNCTION_ARGUMENTS, function_body
from cnpj_assets.read.search_functions import ensure_functions, missing_right

ROW_TYPE = "search_row"


def _ensure_row_type(connection: psycopg.Connection) -> None:
    """The result's composite type (its columns are also argument names, so the function
    cannot declare them with RETURNS TABLE); re-made only when COLUMNS changed."""
    current = [
        name
        for (name,) in connection.execute(
            "SELECT a.attname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 "
            "WHERE n.nspname = %s AND t.typname = %s ORDER BY a.attnum",
            (tables.SCHEMA, ROW_TYPE),
        ).fetchall()
    ]
    if current == list(COLUMNS):
        return
    row_type = sql.Identifier(tables.SCHEMA, ROW_TYPE)
    connection.execute(sql.SQL("DROP TYPE IF EXISTS {} CASCADE").format(row_type))
    connection.execute(
        sql.SQL("CREATE TYPE {} AS ({})").format(
            row_type,
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in COLUMNS),
        )
    )


def create_search_function(connection: psycopg.Connection, schema: str, release: str) -> None:
    """(Re)create `<schema>.search(...)` over the release; call it where the views move.
    Without the right to install `unaccent` it is skipped: search must never stop a
    publication (the load's rights check says what is missing)."""
    if missing_right(connection) is not None:
        return
    ensure_functions(connection)
    _ensure_row_type(connection)
    arguments = sql.SQL(", ").join(
        sql.SQL("{} {} DEFAULT {}").format(sql.Identifier(name), sql.SQL(kind), sql.SQL(default))
        for name, kind, default in FUNCTION_ARGUMENTS
    )
    body = function_body(release).as_string(connection)
    connection.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}({arguments}) RETURNS SETOF {row_type} "
            "LANGUAGE sql STABLE PARALLEL SAFE AS {body}"
        ).format(
            function=sql.Identifier(schema, "search"),
            arguments=arguments,
            row_type=sql.Identifier(tables.SCHEMA, ROW_TYPE),
            body=sql.Literal(body),
        )
    )
    connection.execute(
        sql.SQL("COMMENT ON FUNCTION {function}({types}) IS {comment}").format(
            function=sql.Identifier(schema, "search"),
            types=sql.SQL(", ").join(sql.SQL(kind) for _, kind, _ in FUNCTION_ARGUMENTS),
            comment=sql.Literal(
                f"search the published release ({release}); see docs/search.md for the rules"
            ),
        )
    )
