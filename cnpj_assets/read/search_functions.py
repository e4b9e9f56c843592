"""The SQL functions search shares with its indexes: `cnpj.search_words(text)`.

A name is matched by its words, folded: accents dropped, letters upper-cased, anything
that is not a letter or a digit a separator. The fold is plain `translate` and `upper`
(built in, IMMUTABLE), not the `unaccent` extension: a role that may not create
extensions still gets accent-insensitive search and its indexes, and the Python side
(`fold`) applies the very same character map to the query's words.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables

ACCENTED = "ÁÀÂÃÄÅÉÈÊËÍÌÎÏÓÒÔÕÖÚÙÛÜÇÑÝáàâãäåéèêëíìîïóòôõöúùûüçñýÿ"
PLAIN = "AAAAAAEEEEIIIIOOOOOUUUUCNYAAAAAAEEEEIIIIOOOOOUUUUCNYY"
WORDS_FUNCTION = "search_words"

_WORDS_BODY = (
    "SELECT string_to_array(btrim(regexp_replace(upper(translate($1, {accented}, {plain}) "
    "COLLATE \"C\"), '[^A-Z0-9]+', ' ', 'g')), ' ')"
)
_SEPARATORS = re.compile(r"[^A-Z0-9]+")
_FOLD = str.maketrans(ACCENTED + "abcdefghijklmnopqrstuvwxyz", PLAIN + "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def words_of(text: str) -> list[str]:
    """The folded words of a text, as `cnpj.search_words` returns them (no empty word)."""
    return [word for word in _SEPARATORS.split(text.translate(_FOLD)) if word]


def words_function() -> sql.Identifier:
    return sql.Identifier(tables.SCHEMA, WORDS_FUNCTION)


def _body() -> str:
    return _WORDS_BODY.format(accented=f"'{ACCENTED}'", plain=f"'{PLAIN}'")


def ensure_functions(connection: psycopg.Connection) -> None:
    """Create `cnpj.search_words` unless it exists with this body (then: no DDL at all, so
    a reader without CREATE rights is never refused once it is there)."""
    body = _body()
    current = connection.execute(
        "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND p.proname = %s",
        (tables.SCHEMA, WORDS_FUNCTION),
    ).fetchone()
    if current is not None and current[0] == body:
        return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        connection.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}(text) RETURNS text[] "
                "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS {}"
            ).format(words_function(), sql.Literal(body))
        )
