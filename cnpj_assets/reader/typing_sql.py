"""The DuckDB SQL that reads a CNPJ CSV as text and types it per the table spec.

Typing happens in SQL, inside DuckDB's vectorised engine, because a Python loop over
200 M rows would be the bottleneck. Every value that cannot be typed becomes NULL and
is counted per column through a `_bad_<column>` flag, so nothing is lost in silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnpj_assets.specs import ColumnKind, ColumnSpec, TableSpec

EARLIEST_DATE = "1800-01-01"
LATEST_DATE = "2100-12-31"
NULL_DATE_SPELLINGS = ("", "0", "00000000")
NEWLINE_COUNT_COLUMN = "_newlines"


def quote_identifier(name: str) -> str:
    """Quote a DuckDB identifier; spec column names are fixed, this is defence in depth."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ReadOptions:
    """How the CSV is parsed; `encoding` is a setting because mirrors disagree."""

    encoding: str = "latin-1"
    max_line_size: int = 8 * 1024 * 1024
    strip_nul: bool = True
    count_newlines: bool = False


def read_csv_call(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """read_csv with every column as text and bad lines sent to the rejects tables."""
    columns = ", ".join(f"{quote_literal(c.name)}: 'VARCHAR'" for c in spec.columns)
    return (
        f"read_csv({quote_literal(path)}, header = false, delim = ';', quote = '\"', "
        f"escape = '\"', auto_detect = false, columns = {{{columns}}}, "
        f"encoding = {quote_literal(options.encoding)}, store_rejects = true, "
        f"max_line_size = {int(options.max_line_size)}, strict_mode = true)"
    )


def _raw(column: ColumnSpec, options: ReadOptions) -> str:
    name = quote_identifier(column.name)
    return f"replace({name}, chr(0), '')" if options.strip_nul else name


def _bad_flag(column: ColumnSpec, raw: str, typed: str) -> str | None:
    if column.kind is ColumnKind.DATE:
        nulls = ", ".join(quote_literal(s) for s in NULL_DATE_SPELLINGS)
        return f"({raw} IS NOT NULL AND {raw} NOT IN ({nulls}) AND {typed} IS NULL)"
    if column.kind is ColumnKind.DECIMAL:
        return f"({raw} IS NOT NULL AND {raw} <> '' AND {typed} IS NULL)"
    return None


def _typed(column: ColumnSpec, raw: str) -> str:
    if column.kind is ColumnKind.DATE:
        parsed = f"CAST(try_strptime({raw}, '%Y%m%d') AS DATE)"
        return (
            f"CASE WHEN length({raw}) = 8 AND {parsed} BETWEEN DATE '{EARLIEST_DATE}' "
            f"AND DATE '{LATEST_DATE}' THEN {parsed} END"
        )
    if column.kind is ColumnKind.DECIMAL:
        return f"TRY_CAST(replace(replace({raw}, '.', ''), ',', '.') AS DECIMAL(20, 2))"
    return f"nullif({raw}, '')"


def bad_flag_columns(spec: TableSpec) -> list[str]:
    """Names of the per-column flag columns the typed SELECT adds (and the reader drops)."""
    return [
        f"_bad_{c.name}" for c in spec.columns if c.kind in (ColumnKind.DATE, ColumnKind.DECIMAL)
    ]


def typed_select(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """SELECT the typed columns, then one `_bad_` flag per typed column, in file order."""
    typed_columns: list[str] = []
    flags: list[str] = []
    for column in spec.columns:
        raw = _raw(column, options)
        typed = _typed(column, raw)
        typed_columns.append(f"{typed} AS {quote_identifier(column.name)}")
        flag = _bad_flag(column, raw, typed)
        if flag is not None:
            flags.append(f"{flag} AS {quote_identifier('_bad_' + column.name)}")
    if options.count_newlines:
        lengths = " + ".join(
            f"coalesce(length({quote_identifier(c.name)}), 0)" for c in spec.columns
        )
        without = " + ".join(
            f"coalesce(length(replace({quote_identifier(c.name)}, chr(10), '')), 0)"
            for c in spec.columns
        )
        flags.append(f"({lengths}) - ({without}) AS {NEWLINE_COUNT_COLUMN}")
    select_list = ",\n  ".join(typed_columns + flags)
    return f"SELECT\n  {select_list}\nFROM {read_csv_call(spec, path, options)}"  # noqa: S608
