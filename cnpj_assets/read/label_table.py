"""`cnpj.labels`: the layout's code labels (read/labels.py) as a reference table to join.

One table for every domain, (domain, codigo) -> descricao with its source, so a psql
user reads the labels where the views read them. Labels are facts of the layout, not of
a release: the table is not partitioned. It is written from labels.py by `ensure_labels`,
which the code ensuring cnpj_completo's view calls: a table that already holds exactly
these labels is only read (no write, no lock beyond a reader's), and a change is a
DELETE and upserts of the rows that differ, which never queue the table's readers.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.read.labels import LABEL_SETS, LabelSet

LABELS = "labels"
TABLE = tables.qualified(LABELS)

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    domain text NOT NULL,
    codigo text COLLATE "C" NOT NULL,
    descricao text NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (domain, codigo)
)
"""


def wanted_rows() -> set[tuple[str, str, str, str]]:
    """Every (domain, codigo, descricao, source) labels.py defines."""
    return {
        (label_set.domain, code, label, label_set.source)
        for label_set in LABEL_SETS
        for code, label in label_set.labels
    }


def _current_rows(connection: psycopg.Connection) -> set[tuple[str, str, str, str]] | None:
    exists = connection.execute("SELECT to_regclass(%s)", (f"{tables.SCHEMA}.{LABELS}",))
    row = exists.fetchone()
    if not row or row[0] is None:
        return None
    statement = sql.SQL("SELECT domain, codigo, descricao, source FROM {}").format(TABLE)
    return set(connection.execute(statement).fetchall())


def ensure_labels(connection: psycopg.Connection) -> None:
    """Create cnpj.labels or bring it to labels.py's rows; leave a current one untouched."""
    wanted = wanted_rows()
    if _current_rows(connection) == wanted:
        return
    ensure_schema(connection, tables.SCHEMA)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        connection.execute(sql.SQL(_DDL).format(table=TABLE))  # noqa: S608
        connection.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                TABLE, sql.Literal("Labels of the layout's codes, from cnpj_assets/read/labels.py.")
            )
        )
        current = _current_rows(connection) or set()
        keys = {row[:2] for row in wanted}
        with connection.cursor() as cursor:
            cursor.executemany(
                sql.SQL("DELETE FROM {} WHERE domain = %s AND codigo = %s").format(TABLE),
                [row[:2] for row in current if row[:2] not in keys],
            )
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {} (domain, codigo, descricao, source) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (domain, codigo) DO UPDATE "
                    "SET descricao = EXCLUDED.descricao, source = EXCLUDED.source"
                ).format(TABLE),
                sorted(wanted - current),
            )


def label_join(
    label_set: LabelSet, alias: str, source_alias: str, code: sql.Composable
) -> sql.Composed:
    """LEFT JOIN the code's label: a missing code reads as the empty one (the layout labels
    an empty S/N option), an unknown code gets NULL, and a row that is not there (a company
    without a Simples row) gets no label."""
    return sql.SQL(
        "LEFT JOIN {table} AS {alias} ON {alias}.domain = {domain} "
        "AND {alias}.codigo = coalesce({code}, '') AND {source}.release IS NOT NULL"
    ).format(
        table=TABLE,
        alias=sql.Identifier(alias),
        domain=sql.Literal(label_set.domain),
        code=code,
        source=sql.Identifier(source_alias),
    )
