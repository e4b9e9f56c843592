"""The checks' deep mode: each one verified by scanning the release in PostgreSQL.

The load counts what the checks need as its rows go by (`tally`), so a release job
never scans a table again for its checks. This module is what a user gets when a
check is re-run on a loaded release: the data in PostgreSQL itself, counted again,
so no check rests on the loader's word alone. Results have the shapes the in-load
counts give (`counted`), so the two modes are compared value for value in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg
from psycopg import sql

from cnpj_assets.cnpj_number import FIRST_WEIGHTS, SECOND_WEIGHTS
from cnpj_assets.load.resume import load_chain
from cnpj_assets.postgres.tables import LINEAGE_COLUMN, qualified
from cnpj_assets.quality.duplicate_keys import DuplicateKeys, count_duplicate_keys
from cnpj_assets.quality.rules import SAMPLE_SIZE
from cnpj_assets.read.cnaes_secundarias import SOURCE_COLUMN, codes_of
from cnpj_assets.read.labels import label_set_for
from cnpj_assets.specs import ESTABELECIMENTOS, TABLES, FullCnpj, TableSpec


class Orphans(NamedTuple):
    """Rows of one code column whose code the referenced table lacks."""

    references: str
    rows: int
    codes: int | None  # distinct codes; None when only a lower bound is known
    sample: list[str]  # the smallest codes


class CheckDigits(NamedTuple):
    """Full CNPJs of a table, and those whose check digits are wrong."""

    cnpjs: int
    invalid: int
    sample: list[str]  # the smallest invalid CNPJs


class SecondaryCodes(NamedTuple):
    """The secondary CNAE codes the establishments list: the rows cnaes_secundarias holds."""

    codes: int  # distinct codes per establishment, summed over the establishments
    malformed: int  # of them, codes that are not 7 digits (kept as written)
    sample: list[str]  # the smallest malformed codes


class FileRows(NamedTuple):
    """One file of a load: its lines and what accounts for them."""

    zip_name: str
    lines: int | None
    rows: int
    rejects: int
    blank: int
    continuation: int
    header: int


def release_rows(spec: TableSpec) -> sql.Composed:
    """The release's attached rows of a table, as a FROM item (parameter `release`)."""
    return sql.SQL("(SELECT * FROM {} WHERE release = %(release)s) AS d").format(
        qualified(spec.name)
    )


def row_count(connection: psycopg.Connection, spec: TableSpec, release: str) -> int:
    """The release's attached rows of a table, counted."""
    row = connection.execute(
        sql.SQL("SELECT count(*) FROM {}").format(release_rows(spec)), {"release": release}
    ).fetchone()
    return int(row[0]) if row else 0


def orphans(connection: psycopg.Connection, spec: TableSpec, column: str, release: str) -> Orphans:
    """Rows of `column` whose code the referenced table of the same release lacks.

    One anti-join over the two tables' indexes; NULL and empty codes are not orphans.
    """
    referenced = TABLES[spec.column(column).references or ""]
    statement = sql.SQL(
        "SELECT count(*), count(DISTINCT d.{column}), "
        "(array_agg(DISTINCT d.{column} ORDER BY d.{column}))[1:%(limit)s] "
        "FROM {table} d WHERE d.release = %(release)s AND d.{column} <> '' "
        "AND NOT EXISTS (SELECT 1 FROM {referenced} r "
        "WHERE r.release = %(release)s AND r.{key} = d.{column})"
    ).format(
        column=sql.Identifier(column),
        table=qualified(spec.name),
        referenced=qualified(referenced.name),
        key=sql.Identifier((referenced.key or ())[0]),
    )
    rows, codes, sample = connection.execute(
        statement, {"release": release, "limit": SAMPLE_SIZE}
    ).fetchone() or (0, 0, None)
    return Orphans(referenced.name, int(rows), int(codes), list(sample or []))


def unknown_labels(
    connection: psycopg.Connection, spec: TableSpec, column: str, release: str
) -> Orphans:
    """Rows of a labelled code column whose code the layout's labels lack (read/labels.py);
    NULL and empty codes are no code given."""
    label_set = label_set_for(spec.name, column)
    assert label_set is not None, f"{spec.name}.{column} has no labels"
    statement = sql.SQL(
        "SELECT count(*), count(DISTINCT d.{column}), "
        "(array_agg(DISTINCT d.{column} ORDER BY d.{column}))[1:%(limit)s] "
        "FROM {table} d WHERE d.release = %(release)s AND d.{column} <> '' "
        "AND d.{column} <> ALL(%(codes)s)"
    ).format(column=sql.Identifier(column), table=qualified(spec.name))
    codes = [code for code, _ in label_set.labels]
    rows, distinct, sample = connection.execute(
        statement, {"release": release, "limit": SAMPLE_SIZE, "codes": codes}
    ).fetchone() or (0, 0, None)
    return Orphans(label_set.domain, int(rows), int(distinct), list(sample or []))


def secondary_codes(connection: psycopg.Connection, release: str) -> SecondaryCodes:
    """The release's establishments' secondary codes, split by the table's rule in SQL."""
    statement = sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE c.cnae !~ '^[0-9]{{7}}$'), "
        "(array_agg(DISTINCT c.cnae ORDER BY c.cnae) "
        "FILTER (WHERE c.cnae !~ '^[0-9]{{7}}$'))[1:%(limit)s] "
        "FROM {establishments} e CROSS JOIN LATERAL {codes} c WHERE e.release = %(release)s"
    ).format(
        establishments=qualified(ESTABELECIMENTOS.name),
        codes=codes_of(sql.Identifier("e", SOURCE_COLUMN)),
    )
    codes, malformed, sample = connection.execute(
        statement, {"release": release, "limit": SAMPLE_SIZE}
    ).fetchone() or (0, 0, None)
    return SecondaryCodes(int(codes), int(malformed), list(sample or []))


def _mod11_digit(total: sql.Composable) -> sql.Composed:
    return sql.SQL("CASE WHEN mod({t}, 11) < 2 THEN 0 ELSE 11 - mod({t}, 11) END").format(t=total)


def _weighted_sum(weights: Sequence[int]) -> sql.Composed:
    return sql.SQL(" + ").join(
        sql.SQL("{} * (ascii(substr(a.cnpj, {}, 1)) - 48)").format(
            sql.Literal(weight), sql.Literal(position)
        )
        for position, weight in enumerate(weights[:12], start=1)
    )


def cnpj_validity_query(source: sql.Composable) -> sql.Composed:
    """`cnpj, valid` for each `cnpj` the source query yields, by the alphanumeric rule.

    Each character is worth its code minus 48 (IN RFB 2.229/2024), so digits keep their
    value and numeric CNPJs get their old check digits.
    """
    second = sql.SQL("s.s2 + {} * f.d1").format(sql.Literal(SECOND_WEIGHTS[12]))
    return sql.SQL(
        "SELECT a.cnpj, coalesce(a.cnpj ~ '^[0-9A-Z]{{12}}[0-9]{{2}}$' "
        "AND substr(a.cnpj, 13, 2) = f.d1::text || ({d2})::text, FALSE) AS valid "
        "FROM ({source}) AS a "
        "CROSS JOIN LATERAL (SELECT {s1} AS s1, {s2} AS s2) AS s "
        "CROSS JOIN LATERAL (SELECT {d1} AS d1) AS f"
    ).format(
        source=source,
        s1=_weighted_sum(FIRST_WEIGHTS),
        s2=_weighted_sum(SECOND_WEIGHTS),
        d1=_mod11_digit(sql.SQL("s.s1")),
        d2=_mod11_digit(second),
    )


def _full_cnpjs(spec: TableSpec, source: FullCnpj) -> sql.Composed:
    """SELECT the release's full CNPJs of a table, from the rows that hold one."""
    expression = sql.SQL(" || ").join(sql.Identifier("d", c) for c in source.columns)
    holds = (
        sql.SQL("{} = {}").format(
            sql.Identifier("d", source.only_when[0]), sql.Literal(source.only_when[1])
        )
        if source.only_when
        else sql.SQL("TRUE")
    )
    return sql.SQL("SELECT {} AS cnpj FROM {} WHERE {}").format(
        expression, release_rows(spec), holds
    )


def check_digits(connection: psycopg.Connection, spec: TableSpec, release: str) -> CheckDigits:
    """The table's full CNPJs of the release, and those with wrong check digits."""
    assert spec.full_cnpj is not None, f"{spec.name} holds no full CNPJ"
    total, invalid, sample = connection.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT valid), "
            "(array_agg(DISTINCT cnpj ORDER BY cnpj) FILTER (WHERE NOT valid))[1:%(limit)s] "
            "FROM ({}) AS v"
        ).format(cnpj_validity_query(_full_cnpjs(spec, spec.full_cnpj))),
        {"release": release, "limit": SAMPLE_SIZE},
    ).fetchone() or (0, 0, None)
    return CheckDigits(int(total), int(invalid), list(sample or []))


def duplicate_keys(connection: psycopg.Connection, spec: TableSpec, release: str) -> DuplicateKeys:
    """Repeated key values among the release's attached rows."""
    return count_duplicate_keys(
        connection, release_rows(spec), spec.key or (), {"release": release}
    )


_ROWS_PER_FILE = """
SELECT f.id, count(d.*) FROM cnpj_audit.file_load f
JOIN cnpj_audit.batch_load b ON b.file_load_id = f.id
JOIN cnpj_audit.subbatch_load s ON s.batch_load_id = b.id
JOIN {rows} ON d.{lineage} = s.id
WHERE f.table_load_id = ANY(%(loads)s)
GROUP BY f.id
"""

_FILES = """
SELECT id, zip_name, lines, rows, rejects, coalesce(blank_lines, 0),
       coalesce(continuation_lines, 0), coalesce(header_lines, 0)
FROM cnpj_audit.file_load WHERE table_load_id = %(load)s ORDER BY id
"""


def file_rows(
    connection: psycopg.Connection, spec: TableSpec, release: str, table_load_id: int, deep: bool
) -> list[FileRows]:
    """Each file's lines and what accounts for them; rows counted in PostgreSQL if `deep`.

    Deep, a file's rows are the attached rows whose sub-batch belongs to that file, in
    this load or in the loads it resumed (their sub-batches' rows were kept), matched
    to the file by zip name.
    """
    files = connection.execute(_FILES, {"load": table_load_id}).fetchall()
    if not deep:
        return [FileRows(*f[1:]) for f in files]
    loads = load_chain(connection, table_load_id)
    counted: dict[int, int] = dict(
        connection.execute(
            sql.SQL(_ROWS_PER_FILE).format(
                rows=release_rows(spec), lineage=sql.Identifier(LINEAGE_COLUMN)
            ),
            {"release": release, "loads": loads},
        ).fetchall()
    )
    zips = dict(
        connection.execute(
            "SELECT id, zip_name FROM cnpj_audit.file_load WHERE table_load_id = ANY(%s)", (loads,)
        ).fetchall()
    )
    by_zip: dict[str, int] = {}
    for file_id, rows in counted.items():
        by_zip[zips[file_id]] = by_zip.get(zips[file_id], 0) + int(rows)
    return [FileRows(f[1], f[2], by_zip.get(f[1], 0), *f[4:]) for f in files]
