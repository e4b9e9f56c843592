"""The indexes search reads, built on a published release's children, never in its way.

Built after the publication (the `after_publication` job), one at a time with
`CREATE INDEX CONCURRENTLY` on the release's attached child: readers of `cnpj_current`
never wait for them, and the release is current as early as without them. Until an
index exists the query it serves still answers, by a scan (slower). Each index is
named after its child (`<child>_search_<name>`), so retention's drop of a release takes
its indexes with it; an index a killed build left INVALID is dropped and built again.

Prefix-ordered btrees end in the CNPJ, so a page ordered by CNPJ reads its first rows
straight from the index; names use GIN over their folded words (`cnpj.search_words`),
so each word is one posting list whatever its length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.read.cnaes_secundarias import CNAES_SECUNDARIAS
from cnpj_assets.read.search_functions import ensure_functions, words_function
from cnpj_assets.specs import EMPRESAS, ESTABELECIMENTOS, SOCIOS

_KEY = "cnpj_basico, cnpj_ordem, cnpj_dv"


@dataclass(frozen=True)
class SearchIndex:
    """One index of one table's release child: its name suffix, method and key."""

    table: str
    name: str
    method: str
    key: str  # the index key, SQL over the table's columns and cnpj.search_words

    def definition(self) -> sql.Composed:
        return sql.SQL(self.key).format(words=words_function())  # noqa: S608


SEARCH_INDEXES = (
    SearchIndex(ESTABELECIMENTOS.name, "uf_cnae", "btree", f"uf, cnae_fiscal_principal, {_KEY}"),
    SearchIndex(ESTABELECIMENTOS.name, "municipio", "btree", f"municipio, {_KEY}"),
    SearchIndex(ESTABELECIMENTOS.name, "fantasia_words", "gin", "{words}(nome_fantasia)"),
    SearchIndex(EMPRESAS.name, "razao_words", "gin", "{words}(razao_social)"),
    SearchIndex(SOCIOS.name, "documento", "btree", "cpf_cnpj_socio, cnpj_basico"),
    SearchIndex(CNAES_SECUNDARIAS.name, "cnae", "btree", f"cnae, {_KEY}"),
)
"""Every index search uses; a table whose release has no child yet is skipped."""


@dataclass(frozen=True)
class BuiltIndex:
    """What building one index did: its name, seconds and size (0 when it already was)."""

    index: SearchIndex
    name: str
    seconds: float
    bytes: int
    built: bool


def _attached_child(connection: psycopg.Connection, table: str, release: str) -> str | None:
    """The name of the child attached for the release, found by its partition bound."""
    row = connection.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) "
        "AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%%L)', %s::text)",
        (f"{tables.SCHEMA}.{table}", release),
    ).fetchone()
    return row[0] if row else None


def _valid(connection: psycopg.Connection, name: str) -> bool | None:
    """Whether the index exists and is valid (None: it does not exist)."""
    row = connection.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (f"{tables.SCHEMA}.{name}",),
    ).fetchone()
    return None if row is None else bool(row[0])


def index_name(child: str, index: SearchIndex) -> str:
    return f"{child}_search_{index.name}"


def build_search_indexes(
    database_url: str, release: str, say: Callable[[str], None] = print
) -> list[BuiltIndex]:
    """Build every missing search index of the release, concurrently, then ANALYZE the
    children so the planner knows the words' frequencies; return what each took."""
    done: list[BuiltIndex] = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        ensure_functions(connection)
        connection.execute("SET maintenance_work_mem = '512MB'")
        for index in SEARCH_INDEXES:
            child = _attached_child(connection, index.table, release)
            if child is None:
                say(f"search index {index.name}: {index.table} has no child for {release}; skipped")
                continue
            name = index_name(child, index)
            state = _valid(connection, name)
            if state is False:
                connection.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY {}").format(
                        sql.Identifier(tables.SCHEMA, name)
                    )
                )
            started = time.perf_counter()
            if state is not True:
                connection.execute(
                    sql.SQL(
                        "CREATE INDEX CONCURRENTLY {name} ON {child} USING {method} ({key})"
                    ).format(
                        name=sql.Identifier(name),
                        child=sql.Identifier(tables.SCHEMA, child),
                        method=sql.SQL(index.method),
                        key=index.definition(),
                    )
                )
            seconds = time.perf_counter() - started
            size = connection.execute(
                "SELECT pg_relation_size(to_regclass(%s))", (f"{tables.SCHEMA}.{name}",)
            ).fetchone()
            built = BuiltIndex(index, name, seconds, int(size[0]) if size else 0, state is not True)
            say(
                f"search index {name}: "
                + (f"built in {seconds:.1f} s" if built.built else "already there")
                + f", {built.bytes / 2**20:,.0f} MiB"
            )
            done.append(built)
            if built.built and index.method == "gin":
                connection.execute(
                    sql.SQL("ANALYZE {}").format(sql.Identifier(tables.SCHEMA, child))
                )
    return done
