"""`cnpj.cnaes_secundarias`: the establishments' secondary activities, one row per code.

The Receita ships them as one comma-separated text column (`6201501,6202300`), which
makes "every establishment with activity X" a string split over 60 M rows. Here each
code is a row, partitioned by release like a table, filled by INSERT ... SELECT
from the release's attached establishments and swapped in with the helpers of
postgres.tables, so a rebuild replaces the release's rows exactly.

The rule, the one `codes_of` writes in SQL and `quality.tally` counts during the read:
split on commas, trim spaces, drop empty pieces, keep each distinct code of an
establishment once (at its first position). A code that is not 7 digits is kept as
written (trimmed) and counted by the load's tally. Repeated establishments (a key the
source repeats) keep their rows, as the establishments table does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

from cnpj_assets.load.resume import load_chain
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
    """A subquery of the column's distinct codes (`cnae`, COLLATE "C") with each one's
    position in the column (`position`): the rule of the module docstring, once.

    Written without a per-row aggregate so that PostgreSQL flattens it into the scan: the
    spaces around commas go first (only in a value that has a space), then a code is
    kept where `array_position` finds it first. A GROUP BY per establishment took half
    as long again.
    """
    trimmed = sql.SQL(
        "string_to_array(CASE WHEN strpos({c}, ' ') > 0 "
        "THEN btrim(regexp_replace({c}, ' *, *', ',', 'g'), ' ') ELSE {c} END, ',')"
    ).format(c=column)
    return sql.SQL(
        '(SELECT u.piece COLLATE "C" AS cnae, u.n AS position '
        "FROM (SELECT {trimmed} AS pieces) AS a, unnest(a.pieces) WITH ORDINALITY AS u(piece, n) "
        "WHERE u.piece <> '' AND array_position(a.pieces, u.piece) = u.n)"
    ).format(trimmed=trimmed)


def published_rows(release: str) -> sql.Composed:
    """The rows `cnpj_current.cnaes_secundarias` shows for a release: the built child's,
    or, until it is built (it is built after the publication), the same rows split from
    the establishments' column by the same rule.

    The test of the child is one uncorrelated NOT EXISTS: PostgreSQL runs it once, before
    either scan, and both branches read one snapshot, so a statement sees the split or the
    child, never a mix, and a built child costs no scan of the establishments.
    """
    built = sql.SQL("SELECT 1 FROM {table} WHERE release = {release}").format(
        table=tables.qualified(CNAES_SECUNDARIAS.name), release=sql.Literal(release)
    )
    return sql.SQL(
        "SELECT release, cnpj_basico, cnpj_ordem, cnpj_dv, cnae, _subbatch_id FROM {table} "
        "WHERE release = {release} UNION ALL {split}"
    ).format(
        table=tables.qualified(CNAES_SECUNDARIAS.name),
        release=sql.Literal(release),
        split=split_rows(sql.Literal(release), sql.SQL("NOT EXISTS ({})").format(built)),
    )


def split_rows(release: sql.Composable, condition: sql.Composable) -> sql.Composed:
    """The table's rows split from the release's establishments that meet `condition`."""
    return sql.SQL(
        "SELECT e.release, e.cnpj_basico, e.cnpj_ordem, e.cnpj_dv, c.cnae, e._subbatch_id "
        "FROM {establishments} e CROSS JOIN LATERAL {codes} c "
        "WHERE e.release = {release} AND e.{column} IS NOT NULL AND {condition}"
    ).format(
        establishments=tables.qualified(ESTABELECIMENTOS.name),
        codes=codes_of(sql.Identifier("e", SOURCE_COLUMN)),
        release=release,
        column=sql.Identifier(SOURCE_COLUMN),
        condition=condition,
    )


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


_SUBBATCHES = """
SELECT min(s.id), max(s.id) FROM cnpj_audit.subbatch_load s
JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
WHERE f.table_load_id = ANY(%s)
"""


def fill(database_url: str, child: tables.LoadingChild, establishments_load: int) -> int:
    """Insert the release's codes from its attached establishments; return the rows.

    An INSERT ... SELECT runs on one core; so the establishments' sub-batches (from the
    audit of their load and the loads it resumed) are split in two ranges, each inserted
    on a connection of its own.
    """
    with psycopg.connect(database_url) as connection:
        chain = load_chain(connection, establishments_load)
        low, high = connection.execute(_SUBBATCHES, (chain,)).fetchone() or (None, None)
    if low is None or high is None:
        return 0
    middle = (low + high) // 2
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cnaes_secundarias") as pool:
        done = [
            pool.submit(_insert, database_url, child, first, last)
            for first, last in ((low, middle), (middle + 1, high))
        ]
        return sum(future.result() for future in done)


def _insert(database_url: str, child: tables.LoadingChild, first: int, last: int) -> int:
    """Insert the codes of the establishments written by sub-batches first..last."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        cursor = connection.execute(
            sql.SQL(
                "INSERT INTO {child} (release, cnpj_basico, cnpj_ordem, cnpj_dv, cnae, "
                "_subbatch_id) {split}"
            ).format(
                child=child.identifier,
                split=split_rows(sql.Placeholder(), sql.SQL("e._subbatch_id BETWEEN %s AND %s")),
            ),
            (child.release, first, last),
        )
        return cursor.rowcount
