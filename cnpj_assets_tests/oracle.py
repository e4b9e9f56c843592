"""An independent reading of a zip with Python's csv module: what a load must produce.

The tests compare the database with this, not with the loader's own counts, so a
loader that drops or invents rows cannot agree with itself and pass. It follows the
layout (cnpj-layout.md and docs/tables.md's "Reading the files"), never the reader: a
record with any other number of fields than the table's columns is a reject, and the
values are typed here with Python's date and Decimal, not DuckDB. (The one leniency
of the reader, an empty field past the last read as a trailing delimiter, is not
copied here: the synthetic releases have none, and test_reader.py pins it by hand.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cnpj_assets.specs import TABLES, ColumnKind, ColumnSpec

Value = str | dt.date | Decimal | None


@dataclass
class OracleFile:
    good: list[tuple[int, list[str]]] = field(default_factory=list)  # (start line, fields)
    bad: list[int] = field(default_factory=list)  # start lines of wrong-width records


def read_zip(zip_path: Path, table: str) -> OracleFile:
    width = len(TABLES[table].columns)
    with zipfile.ZipFile(zip_path) as archive:
        (info,) = archive.infolist()
        text = archive.read(info).decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    result = OracleFile()
    previous_end = 0
    for record in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not record:
            continue
        if len(record) == width:
            result.good.append((start, record))
        else:
            result.bad.append(start)
    return result


def read_table(landing: Path, release: str, table: str) -> dict[str, OracleFile]:
    return {name: read_zip(landing / release / name, table) for name in TABLES[table].zip_names()}


def typed_value(column: ColumnSpec, raw: str) -> Value:
    """A field as PostgreSQL must hold it: NUL bytes gone, empty as NULL, dates and decimals
    parsed, an impossible date or decimal NULL (the audit counts it)."""
    value = raw.replace("\x00", "")
    if value == "":
        return None
    if column.kind is ColumnKind.DATE:
        try:
            date = dt.datetime.strptime(value, "%Y%m%d").date() if len(value) == 8 else None
        except ValueError:
            return None
        return date if date is not None and 1800 <= date.year <= 2100 else None
    if column.kind is ColumnKind.DECIMAL:
        try:
            return Decimal(value.replace(".", "").replace(",", ".")).quantize(Decimal("0.01"))
        except InvalidOperation:
            return None
    return value


def typed_rows(landing: Path, release: str, table: str) -> Counter[tuple[Value, ...]]:
    """Every good record of the table's zips, typed, as a multiset (real files repeat rows)."""
    columns = TABLES[table].columns
    return Counter(
        tuple(typed_value(column, raw) for column, raw in zip(columns, record, strict=True))
        for oracle in read_table(landing, release, table).values()
        for _, record in oracle.good
    )
