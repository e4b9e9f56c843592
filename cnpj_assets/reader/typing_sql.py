"""The DuckDB SQL that reads a CNPJ CSV as text and types it per the table spec.

Typing happens in SQL, inside DuckDB's vectorised engine, because a Python loop over
200 M rows would be the bottleneck. Every value that cannot be typed becomes NULL and
is counted per column (a `_given_<column>` flag against the typed column's NULLs), so
nothing is lost in silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnpj_assets.specs import ColumnKind, ColumnSpec, TableSpec

EARLIEST_DATE = "1800-01-01"
LATEST_DATE = "2100-12-31"
NULL_DATE_SPELLINGS = ("", "0", "00000000")
NEWLINE_COUNT_COLUMN = "_newlines"
GIVEN_PREFIX = "_given_"


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


def read_csv_call(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """read_csv with every column of the file as text and bad lines sent to the rejects tables.

    The read buffer is set to the line limit, its smallest allowed size. Left to
    DuckDB, it is 16 times the line limit (128 MB for 8 MB lines), and the read's memory
    grows with the file.
    """
    columns = ", ".join(f"{quote_literal(c.name)}: 'VARCHAR'" for c in spec.file_columns)
    header = "true" if spec.csv.header else "false"
    return (
        f"read_csv({quote_literal(path)}, header = {header}, "
        f"delim = {quote_literal(spec.csv.delimiter)}, quote = '\"', "
        f"escape = '\"', auto_detect = false, columns = {{{columns}}}, "
        f"encoding = {quote_literal(options.encoding)}, store_rejects = true, "
        f"max_line_size = {int(options.max_line_size)}, "
        f"buffer_size = {int(options.max_line_size)}, strict_mode = true)"
    )


def _source(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """The CSV as text; with NUL bytes in the file, stripped of them (PostgreSQL refuses NUL).

    DuckDB already turns an empty field ("") into NULL.
    """
    csv = read_csv_call(spec, path, options)
    if not options.strip_nul:
        return csv
    columns = ", ".join(
        f"replace({quote_identifier(c.name)}, chr(0), '') AS {quote_identifier(c.name)}"
        for c in spec.file_columns
    )
    return f"(SELECT {columns} FROM {csv})"  # noqa: S608


def _typed_and_given(column: ColumnSpec) -> tuple[str, str | None]:
    """The typed value, and for dates and decimals a `_given_` flag: a value was written.

    A value given but not typed (NULL) was invalid; counting those from the flag and the
    typed column's nulls parses each value once. Eight digits compare as text in date
    order, so the range check needs no parse; one level of plain comparisons is faster
    than parsing in a subquery.
    """
    name = quote_identifier(column.name)
    if column.kind is ColumnKind.DATE:
        low, high = EARLIEST_DATE.replace("-", ""), LATEST_DATE.replace("-", "")
        plausible = f"length({name}) = 8 AND {name} BETWEEN '{low}' AND '{high}'"
        typed = f"CAST(CASE WHEN {plausible} THEN try_strptime({name}, '%Y%m%d') END AS DATE)"
        nulls = " AND ".join(f"{name} <> {quote_literal(s)}" for s in NULL_DATE_SPELLINGS if s)
        return typed, f"({name} IS NOT NULL AND {nulls})"
    if column.kind is ColumnKind.DECIMAL:
        typed = f"TRY_CAST(replace(replace({name}, '.', ''), ',', '.') AS DECIMAL(20, 2))"
        return typed, f"({name} IS NOT NULL)"
    if column.kind is ColumnKind.INTEGER:
        return f"TRY_CAST(trim({name}) AS INTEGER)", f"({name} IS NOT NULL)"
    if column.kind is ColumnKind.CNPJ:
        return _cnpj(name)
    return name, None


def _cnpj(name: str) -> tuple[str, str]:
    """A CNPJ as its 14 characters, whether punctuated (00.000.000/0001-91) or not.

    Digits alone are padded with zeros (a spreadsheet drops them); an alphanumeric one
    must be whole. Zeros alone mean "none" (cnpj_da_scp is 0 when there is no SCP). The
    usual value, 14 characters, is settled by the first test: one regular expression.
    """
    bare = f"upper(replace(replace(replace(trim({name}), '.', ''), '/', ''), '-', ''))"
    typed = (
        f"CASE WHEN regexp_full_match({bare}, '[0-9A-Z]{{12}}[0-9]{{2}}') "
        f"THEN nullif({bare}, '00000000000000') "
        f"WHEN ltrim({bare}, '0') = '' THEN NULL "
        f"WHEN regexp_full_match({bare}, '[0-9]{{1,13}}') THEN lpad({bare}, 14, '0') END"
    )
    return typed, f"({name} IS NOT NULL AND NOT regexp_full_match({bare}, '0*'))"


FLAGGED_KINDS = (ColumnKind.DATE, ColumnKind.DECIMAL, ColumnKind.INTEGER, ColumnKind.CNPJ)


def typed_columns_with_flags(spec: TableSpec) -> list[str]:
    """Names of the file's columns whose invalid values are counted (all but text and codes)."""
    return [c.name for c in spec.file_columns if c.kind in FLAGGED_KINDS]


def typed_select(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """SELECT the typed columns, then one `_given_` flag per column whose values are counted.

    A column not in the file (`prefix_of`) is cut from its source's typed value by an
    outer SELECT, so the source is typed once; the reader picks columns by name.
    """
    typed_columns: list[str] = []
    flags: list[str] = []
    for column in spec.file_columns:
        typed, given = _typed_and_given(column)
        typed_columns.append(f"{typed} AS {quote_identifier(column.name)}")
        if given is not None:
            flags.append(f"{given} AS {quote_identifier(GIVEN_PREFIX + column.name)}")
    select_list = ",\n  ".join(typed_columns + flags)
    select = f"SELECT\n  {select_list}\nFROM {_source(spec, path, options)}"  # noqa: S608
    cut = [
        f"left({quote_identifier(c.prefix_of)}, {int(c.width or 0)}) AS {quote_identifier(c.name)}"
        for c in spec.columns
        if c.prefix_of is not None
    ]
    if not cut:
        return select
    return f"SELECT *, {', '.join(cut)} FROM ({select})"  # noqa: S608


def newline_counts_select(spec: TableSpec, path: str, options: ReadOptions) -> str:
    """SELECT, per good row in file order, the newlines inside its quoted fields.

    A second pass, run only on a file whose lines outnumber its rows, rejects and blank
    lines; the main read never computes it, so the usual file pays nothing for it.
    """
    lengths = " + ".join(
        f"coalesce(length({quote_identifier(c.name)}), 0)" for c in spec.file_columns
    )
    without = " + ".join(
        f"coalesce(length(replace({quote_identifier(c.name)}, chr(10), '')), 0)"
        for c in spec.file_columns
    )
    source = _source(spec, path, options)
    return f"SELECT ({lengths}) - ({without}) AS {NEWLINE_COUNT_COLUMN} FROM {source}"  # noqa: S608
