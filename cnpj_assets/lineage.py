"""From a CNPJ back to the files, lines, sub-batches and Dagster runs its rows came from.

Every data row carries `_subbatch_id`; the view `cnpj_audit.lineage` turns that id into
its sub-batch, batch, file and table load. This module parses what a user types (a
14-character CNPJ or an 8-character base, alphanumeric or not, punctuated or not),
finds every row of that company in the four fact tables and every release (and in the
tax-regime snapshots), and formats
the answer for people or for machines. The CLI's `lineage` command only calls `run`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, TextIO

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.postgres.server import server_url
from cnpj_assets.postgres.tables import LINEAGE_COLUMN, SCHEMA, qualified

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
EXIT_FOUND, EXIT_NOT_FOUND, EXIT_INVALID = 0, 1, 2

_PUNCTUATION = re.compile(r"[.\-/\s]")
_BASE = re.compile(r"[0-9A-Z]{8}")
_FULL = re.compile(r"[0-9A-Z]{12}[0-9]{2}")


class InvalidCnpj(ValueError):
    """What the user typed is not a CNPJ nor a CNPJ base; the message says why."""


@dataclass(frozen=True)
class CnpjQuery:
    """A normalized CNPJ: its base, and its branch and check digits when given in full."""

    basico: str
    ordem: str | None = None
    dv: str | None = None

    @property
    def text(self) -> str:
        return self.basico + (self.ordem or "") + (self.dv or "")

    @property
    def formatted(self) -> str:
        """The usual punctuation: 12.ABC.345/01DE-35, or 12.ABC.345 for a base."""
        b = self.basico
        base = f"{b[:2]}.{b[2:5]}.{b[5:]}"
        return base if self.ordem is None else f"{base}/{self.ordem}-{self.dv}"


def parse_cnpj(text: str) -> CnpjQuery:
    """Normalize user input; raise InvalidCnpj on a wrong length, character or check digit.

    Punctuation (`.`, `/`, `-`, spaces) is dropped and letters are upper-cased, since
    people copy CNPJs from documents in every spelling. Check digits follow the
    alphanumeric rule of IN RFB 2.229/2024, which gives numeric CNPJs their old digits.
    """
    cleaned = _PUNCTUATION.sub("", text).upper()
    if len(cleaned) not in (8, 14):
        raise InvalidCnpj(
            f"{text!r} has {len(cleaned)} characters without punctuation; a CNPJ has 14 "
            "and a CNPJ base 8"
        )
    if len(cleaned) == 8:
        if not _BASE.fullmatch(cleaned):
            raise InvalidCnpj(f"{text!r}: a CNPJ base is 8 characters of 0-9 and A-Z")
        return CnpjQuery(cleaned)
    if not _FULL.fullmatch(cleaned):
        raise InvalidCnpj(
            f"{text!r}: a CNPJ is 12 characters of 0-9 and A-Z followed by 2 check digits"
        )
    expected = check_digits(cleaned[:12])
    if expected != cleaned[12:]:
        raise InvalidCnpj(
            f"{text!r}: wrong check digits {cleaned[12:]}, the first 12 characters give {expected}"
        )
    return CnpjQuery(cleaned[:8], cleaned[8:12], cleaned[12:])


@dataclass(frozen=True)
class LineageRow:
    """One data row and where it came from."""

    release: str
    table: str
    cnpj: str  # the row's CNPJ: 14 characters for an establishment, the base otherwise
    label: str | None  # what the row is about: a name, or the Simples options
    zip_name: str
    member_name: str | None
    sha256: str | None
    first_line: int | None
    last_line: int | None
    subbatch_id: int
    subbatch_index: int
    batch_id: int
    batch_index: int
    file_load_id: int
    table_load_id: int
    loaded_at: datetime | None
    dagster_run_id: str | None
    run_url: str | None


_LABELS: dict[str, sql.Composable] = {
    "empresas": sql.SQL("d.razao_social"),
    "estabelecimentos": sql.SQL("d.nome_fantasia"),
    "socios": sql.SQL("d.nome_socio_razao_social"),
    "simples": sql.SQL("concat('Simples ', d.opcao_pelo_simples, ', MEI ', d.opcao_mei)"),
    "regime_tributario": sql.SQL("concat(d.ano, ' ', d.forma_de_tributacao)"),
}
"""The tables that hold a company's rows, each with what labels a row for a reader."""

_AUDIT_COLUMNS = tuple(
    f.name
    for f in fields(LineageRow)
    if f.name not in ("release", "table", "cnpj", "label", "run_url")
)
"""What each row takes from cnpj_audit.lineage: the LineageRow fields not computed here."""


def dagster_url() -> str:
    """The Dagster UI the run links point at: CNPJ_DAGSTER_URL, else a local `dagster dev`."""
    return os.environ.get("CNPJ_DAGSTER_URL") or DEFAULT_DAGSTER_URL


def run_url(run_id: str | None, base_url: str) -> str | None:
    return f"{base_url.rstrip('/')}/runs/{run_id}" if run_id else None


def _cnpj_expression(table: str) -> sql.Composable:
    if table == "estabelecimentos":
        return sql.SQL("d.cnpj_basico || d.cnpj_ordem || d.cnpj_dv")
    if table == "regime_tributario":
        return sql.SQL("d.cnpj")
    return sql.SQL("d.cnpj_basico")


def _table_query(table: str, query: CnpjQuery) -> sql.Composed:
    """The rows of one table for the CNPJ; a full CNPJ narrows establishments (and the
    regimes, indexed by their full CNPJ: a prefix reaches that index) to its own."""
    narrow = sql.SQL("")
    if table == "estabelecimentos" and query.ordem is not None:
        narrow = sql.SQL(" AND d.cnpj_ordem = %(ordem)s AND d.cnpj_dv = %(dv)s")
    if table == "regime_tributario":
        narrow = sql.SQL(" AND d.cnpj LIKE %(prefix)s")
    return sql.SQL(
        "SELECT d.release, {table_name} AS {table_alias}, {position} AS table_position, "
        "{cnpj} AS cnpj, {label} AS label, {audit} "
        "FROM {table} d JOIN cnpj_audit.lineage l ON l.subbatch_id = d.{lineage} "
        "WHERE d.cnpj_basico = %(basico)s{narrow}"
    ).format(
        table_name=sql.Literal(table),
        table_alias=sql.Identifier("table"),
        position=sql.Literal(list(_LABELS).index(table)),
        cnpj=_cnpj_expression(table),
        label=_LABELS[table],
        audit=sql.SQL(", ").join(sql.Identifier("l", c) for c in _AUDIT_COLUMNS),
        table=qualified(table),
        lineage=sql.Identifier(LINEAGE_COLUMN),
        narrow=narrow,
    )


def _existing_tables(connection: psycopg.Connection) -> list[str]:
    """The fact tables that have been created; a fresh database has none of them."""
    rows = connection.execute(
        "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY AS u (t, n) "
        "WHERE to_regclass(%s || '.' || t) IS NOT NULL ORDER BY n",
        (list(_LABELS), SCHEMA),
    ).fetchall()
    return [row[0] for row in rows]


def find_lineage(
    connection: psycopg.Connection, query: CnpjQuery, base_url: str | None = None
) -> list[LineageRow]:
    """Every row of the company in every fact table and release, with its source."""
    ensure_audit_schema(connection)
    tables = _existing_tables(connection)
    if not tables:
        return []
    statement = sql.SQL(" UNION ALL ").join(_table_query(t, query) for t in tables)
    statement = sql.SQL("{} ORDER BY release, table_position, cnpj, first_line").format(statement)
    params = {
        "basico": query.basico,
        "ordem": query.ordem,
        "dv": query.dv,
        "prefix": query.text + "%",
    }
    with connection.cursor(row_factory=dict_row) as cursor:
        records = cursor.execute(statement, params).fetchall()
    url = base_url or dagster_url()
    return [_to_row(record, url) for record in records]


def _to_row(record: dict[str, Any], base_url: str) -> LineageRow:
    record.pop("table_position")
    return LineageRow(**record, run_url=run_url(record["dagster_run_id"], base_url))


def to_json(query: CnpjQuery, rows: Sequence[LineageRow]) -> str:
    """The answer for machines: the normalized query and one object per row."""
    document = {
        "query": query.text,
        "cnpj_basico": query.basico,
        "rows": [asdict(row) for row in rows],
    }
    return json.dumps(document, default=_json_default, ensure_ascii=False, indent=1)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def format_rows(query: CnpjQuery, rows: Sequence[LineageRow]) -> str:
    """The answer for people: a header, then one block per row with its whole source."""
    releases = sorted({row.release for row in rows})
    lines = [
        f"CNPJ {query.formatted}: {len(rows)} row(s) in {len(releases)} release(s) "
        f"({', '.join(releases)})"
    ]
    for row in rows:
        lines += ["", f"{row.release}  {row.table:<16} {row.cnpj:<14}  {row.label or ''}".rstrip()]
        lines += [f"  {name:<9} {value}" for name, value in _row_details(row)]
    return "\n".join(lines)


def _row_details(row: LineageRow) -> list[tuple[str, str]]:
    loaded = row.loaded_at.isoformat(sep=" ", timespec="seconds") if row.loaded_at else "-"
    return [
        ("file", f"{row.zip_name} / {row.member_name}"),
        ("sha256", row.sha256 or "-"),
        ("lines", f"{row.first_line}-{row.last_line} of the member (sub-batch's range)"),
        (
            "ids",
            f"sub-batch {row.subbatch_id} (#{row.subbatch_index}), batch {row.batch_id} "
            f"(#{row.batch_index}), file_load {row.file_load_id}, "
            f"table_load {row.table_load_id}",
        ),
        ("loaded", loaded),
        ("run", f"{row.dagster_run_id or '-'}  {row.run_url or ''}".rstrip()),
    ]


def parsed_or_said(text: str, err: TextIO) -> CnpjQuery | None:
    """The CNPJ the user typed, or None once the reason it is not one was printed."""
    try:
        return parse_cnpj(text)
    except InvalidCnpj as error:
        print(f"invalid CNPJ: {error}", file=err)
        return None


def run(
    text: str,
    as_json: bool = False,
    database_url: str | None = None,
    base_url: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The `lineage` command: print the answer and return the exit code (0, 1 or 2).

    The input is checked before the database is reached, so a typo is answered at once
    even when the embedded server would have to start first. `out` and `err` default
    to the streams of the moment of the call, not of the import.
    """
    out, err = out or sys.stdout, err or sys.stderr
    query = parsed_or_said(text, err)
    if query is None:
        return EXIT_INVALID
    with psycopg.connect(database_url or server_url().url) as connection:
        rows = find_lineage(connection, query, base_url)
    if not rows:
        searched = ", ".join(f"{SCHEMA}.{table}" for table in _LABELS)
        print(f"CNPJ {query.formatted} not found in {searched} (any release)", file=err)
        return EXIT_NOT_FOUND
    print(to_json(query, rows) if as_json else format_rows(query, rows), file=out)
    return EXIT_FOUND
