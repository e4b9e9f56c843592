"""A query's rows out of PostgreSQL as typed Arrow record batches.

`COPY (query) TO STDOUT (FORMAT csv)` is the server's own fastest way out: no cursor
round trips, one message per row. pyarrow's C++ CSV reader turns that stream into record
batches of the types PostgreSQL declares for the query (text stays text with its
zeros, date is date32, numeric(p,s) is decimal128(p,s)). PostgreSQL writes a NULL as
an unquoted empty field and an empty string as `""`, which the reader tells apart.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

BLOCK_BYTES = 8 * 2**20  # CSV bytes per record batch
_TYPES = {
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "jsonb": pa.string(),
    "int8": pa.int64(),
    "int4": pa.int32(),
    "int2": pa.int16(),
    "bool": pa.bool_(),
    "float8": pa.float64(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
}


def prepare_session(connection: psycopg.Connection) -> None:
    """Dates and times in the forms the CSV reader parses: ISO, and UTC."""
    connection.execute("SET DateStyle = 'ISO, YMD'")
    connection.execute("SET TimeZone = 'UTC'")


def _arrow_type(connection: psycopg.Connection, column: psycopg.Column) -> pa.DataType:
    info = connection.adapters.types.get(column.type_code)
    name = info.name if info else ""
    if name == "numeric":
        if column.precision is None:  # unconstrained: kept exact, as its text
            return pa.string()
        return pa.decimal128(column.precision, column.scale or 0)
    if name not in _TYPES:
        raise TypeError(f"column {column.name}: no Arrow type for PostgreSQL's {name!r}")
    return _TYPES[name]


def arrow_schema(connection: psycopg.Connection, query: sql.Composable) -> pa.Schema:
    """The Arrow schema of the query's columns, from PostgreSQL's description of them."""
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(query))
        assert cursor.description is not None
        return pa.schema([pa.field(c.name, _arrow_type(connection, c)) for c in cursor.description])


class _CopyReader:
    """The COPY stream as the file-like object pyarrow reads: `read(n)` gathers rows
    (one COPY message each) until n bytes or the end."""

    def __init__(self, copy: psycopg.Copy) -> None:
        self._rows = iter(copy)
        self._left = b""
        self.closed = False

    def has_rows(self) -> bool:
        if not self._left:
            self._left = bytes(next(self._rows, b""))
        return bool(self._left)

    def read(self, size: int = -1) -> bytes:
        parts, length = [self._left], len(self._left)
        for row in self._rows:
            parts.append(row)
            length += len(row)
            if 0 <= size <= length:
                break
        data = b"".join(parts)
        if size < 0:
            self._left = b""
            return data
        self._left = data[size:]
        return data[:size]

    def close(self) -> None:
        self.closed = True


def record_batches(
    connection: psycopg.Connection, query: sql.Composable, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """The query's rows in `schema`, a batch per BLOCK_BYTES of CSV; none for no rows."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        reader = _CopyReader(copy)
        if not reader.has_rows():
            return
        batches = pacsv.open_csv(
            reader,
            read_options=pacsv.ReadOptions(column_names=schema.names, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from batches
