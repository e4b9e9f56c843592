"""`cnpj.cnaes_secundarias`: the establishments' secondary activities, one row per code.

The Receita ships them as one comma-separated text column (`6201501,6202300`), which
makes "every establishment with activity X" a string split over 60 M rows. Here each
code is a row, partitioned by release like a table, filled by one INSERT ... SELECT
from the release's attached establishments and swapped in with the helpers of
postgres.tables, so a rebuild replaces the release's rows exactly.

The rule, the one `codes_of` writes in SQL and `quality.tally` counts during the read:
split on commas, trim spaces, drop empty pieces, keep each distinct code of an
establishment once (at its first position). A code that is not 7 digits is kept as
written (trimmed) and counted by the load's tally. Repeated establishments (a key the
source repeats) keep their rows, as the establishments table does.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.specs import ESTABELECIMENTOS, derived_table

CNAES_SECUNDARIAS = derived_table(
    "cnaes_secundarias",
    "Secondary activities (CNAE) of the establishments, one row per distinct code.",
    None,
    ("cnpj_basico", "cnpj_ordem", "cnpj_dv"),
)
"""The table's identity for the child/swap helpers; its columns are PARENT_DDL's."""

SOURCE_COLUMN = "cnae_fiscal_secundaria"

PARENT_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    release text NOT NULL,
    cnpj_basico text COLLATE "C",
    cnpj_ordem text COLLATE "C",
    cnpj_dv text COLLATE "C",
    cnae text COLLATE "C" NOT NULL,
    _subbatch_id bigint NOT NULL
) PARTITION BY LIST (release)
"""


def codes_of(column: sql.Composable) -> sql.Composed:
    """A subquery of the column's distinct codes (`cnae`, COLLATE "C") with the position of
    each one's first occurrence (`position`): the rule of the module docstring, once."""
    return sql.SQL(
        '(SELECT btrim(u.piece) COLLATE "C" AS cnae, min(u.n) AS position '
        "FROM unnest(string_to_array({column}, ',')) WITH ORDINALITY AS u(piece, n) "
        "WHERE btrim(u.piece) <> '' GROUP BY 1)"
    ).format(column=column)


def ensure_parent(connection: psycopg.Connection) -> None:
    """Create the partitioned parent if it is missing; an existing one is left alone."""
    name = f"{tables.SCHEMA}.{CNAES_SECUNDARIAS.name}"
    exists = connection.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    if exists and exists[0] is not None:
        return
    ensure_schema(connection, tables.SCHEMA)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        connection.execute(
            sql.SQL(PARENT_DDL).format(table=tables.qualified(CNAES_SECUNDARIAS.name))  # noqa: S608
        )
        connection.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                tables.qualified(CNAES_SECUNDARIAS.name),
                sql.Literal(CNAES_SECUNDARIAS.description),
            )
        )


def fill(connection: psycopg.Connection, child: tables.LoadingChild) -> int:
    """Insert the release's codes from its attached establishments; return the rows."""
    cursor = connection.execute(
        sql.SQL(
            "INSERT INTO {child} (release, cnpj_basico, cnpj_ordem, cnpj_dv, cnae, _subbatch_id) "
            "SELECT e.release, e.cnpj_basico, e.cnpj_ordem, e.cnpj_dv, c.cnae, e._subbatch_id "
            "FROM {establishments} e CROSS JOIN LATERAL {codes} c "
            "WHERE e.release = %s AND e.{column} IS NOT NULL"
        ).format(
            child=child.identifier,
            establishments=tables.qualified(ESTABELECIMENTOS.name),
            codes=codes_of(sql.Identifier("e", SOURCE_COLUMN)),
            column=sql.Identifier(SOURCE_COLUMN),
        ),
        (child.release,),
    )
    return cursor.rowcount
