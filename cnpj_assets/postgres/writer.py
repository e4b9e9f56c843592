"""COPY one sub-batch of typed Arrow rows into a child table.

Arrow's C++ CSV writer formats the rows (dates ISO, decimals with a point, strings
always quoted, NULL as an empty unquoted field) and psycopg streams the bytes to
`COPY ... FROM STDIN (FORMAT csv)`: no Python loop over rows or values.
"""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from cnpj_assets.postgres.tables import LINEAGE_COLUMN, LoadingChild

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
CSV_PIECE_ROWS = 16_384


def with_lineage(data: pa.Table, subbatch_id: int) -> pa.Table:
    """The rows plus the `_subbatch_id` column that ties each to its audit row."""
    lineage = pa.repeat(pa.scalar(subbatch_id, pa.int64()), data.num_rows)
    return data.append_column(LINEAGE_COLUMN, lineage)


def copy_rows(
    connection: psycopg.Connection, child: LoadingChild, data: pa.Table, subbatch_id: int
) -> int:
    """COPY the rows in one statement (its own transaction); return the bytes sent.

    The CSV is formatted in pieces of CSV_PIECE_ROWS rows into Arrow buffers: one large
    buffer per sub-batch grew the process (malloc keeps what several COPY threads free).
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        child.identifier, sql.SQL(", ").join(sql.Identifier(c) for c in child.copy_columns)
    )
    sent = 0
    with connection.transaction(), connection.cursor() as cursor, cursor.copy(statement) as copy:
        for piece in with_lineage(data, subbatch_id).to_batches(max_chunksize=CSV_PIECE_ROWS):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(piece, sink, _CSV_OPTIONS)
            payload = sink.getvalue()
            copy.write(memoryview(payload))
            sent += payload.size
    return sent
