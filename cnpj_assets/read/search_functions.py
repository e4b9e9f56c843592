"""The SQL functions search shares with its indexes: `cnpj.search_words(text)` and two
helpers.

A name is matched by its words, folded: accents dropped by the `unaccent` extension,
letters upper-cased, anything that is not a letter or a digit a separator, empty pieces
dropped. The function is IMMUTABLE (unaccent itself is only STABLE, as its rules file
could change) so GIN indexes can be built on it; the query folds its own words through
the same function, so a row and a query never disagree on a rule.

`unaccent` is a trusted extension (PostgreSQL 13+): a role with CREATE on the database
installs it; without that right an admin runs `CREATE EXTENSION unaccent` once.
`translate()` with an accent map needs no extension but measured 25 us per name
against 2 us, which is minutes per index at a real release's 60 M names.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import MissingPrivilege

EXTENSION = "unaccent"
WORDS_FUNCTION = "search_words"

_FOLD = 'upper({unaccent}({dictionary}::regdictionary, $1) COLLATE "C")'
_FUNCTIONS = (  # name, result type, body: each a function of one text argument
    ("search_fold", "text", "SELECT " + _FOLD),
    (
        WORDS_FUNCTION,
        "text[]",
        "SELECT array_remove(regexp_split_to_array(" + _FOLD + ", '[^A-Z0-9]+'), '')",
    ),
    (
        "search_patterns",
        "text[]",
        "SELECT array_agg('%' || w || '%') FROM unnest({schema}.search_words($1)) AS w",
    ),
)
"""`search_fold`: the text folded, a cheap LIKE target; `search_words`: its words;
`search_patterns`: a `%word%` per word, for a LIKE ALL that rejects most rows before
the words are split (splitting costs about 5x the fold)."""


def function(name: str) -> sql.Identifier:
    return sql.Identifier(tables.SCHEMA, name)


def words_function() -> sql.Identifier:
    return function(WORDS_FUNCTION)


def _bodies(connection: psycopg.Connection, schema: str) -> dict[str, str]:
    unaccent = sql.Identifier(schema, EXTENSION)
    names = {
        "unaccent": unaccent,
        "dictionary": sql.Literal(unaccent.as_string(connection)),
        "schema": sql.Identifier(tables.SCHEMA),
    }
    return {
        name: sql.SQL(body).format(**names).as_string(connection)  # noqa: S608
        for name, _, body in _FUNCTIONS
    }


def _extension_schema(connection: psycopg.Connection) -> str | None:
    row = connection.execute(
        "SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace "
        "WHERE x.extname = %s",
        (EXTENSION,),
    ).fetchone()
    return row[0] if row else None


def missing_right(connection: psycopg.Connection) -> str | None:
    """What keeps this role from installing `unaccent`, with the fix; None when nothing."""
    if _extension_schema(connection) is not None:
        return None
    row = connection.execute(
        "SELECT current_user, current_database(), "
        "has_database_privilege(current_database(), 'CREATE'), "
        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)",
        (EXTENSION,),
    ).fetchone()
    assert row is not None
    role, database, may_create, available = row
    if not available:
        return (
            f"search needs the {EXTENSION} extension, which this server does not ship "
            "(it is in PostgreSQL's contrib package)"
        )
    if not may_create:
        return (
            f"search needs the {EXTENSION} extension; role {role} may not create it: an admin "
            f"can run, in database {database}: CREATE EXTENSION {EXTENSION} "
            f"(or GRANT CREATE ON DATABASE {database} TO {role})"
        )
    return None


def ensure_functions(connection: psycopg.Connection) -> None:
    """Install unaccent (in schema cnpj) and `cnpj.search_words` unless they are there as
    wanted: then no DDL at all, so a reader without CREATE rights is never refused."""
    schema = _extension_schema(connection)
    if schema is not None and _current_bodies(connection) == _bodies(connection, schema):
        return
    problem = missing_right(connection)
    if problem is not None:
        raise MissingPrivilege(problem)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        schema = _extension_schema(connection)
        if schema is None:
            connection.execute(
                sql.SQL("CREATE EXTENSION {} SCHEMA {}").format(
                    sql.Identifier(EXTENSION), sql.Identifier(tables.SCHEMA)
                )
            )
            schema = tables.SCHEMA
        bodies = _bodies(connection, schema)
        for name, result, _ in _FUNCTIONS:
            connection.execute(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}(text) RETURNS {} "
                    "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS {}"
                ).format(function(name), sql.SQL(result), sql.Literal(bodies[name]))
            )


def _current_bodies(connection: psycopg.Connection) -> dict[str, str]:
    rows = connection.execute(
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND p.proname = ANY(%s)",
        (tables.SCHEMA, [name for name, _, _ in _FUNCTIONS]),
    ).fetchall()
    return dict(rows)
