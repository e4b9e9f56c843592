"""A query's rows as one CSV file: PostgreSQL's own CSV, UTF-8, with a header.

The COPY stream goes to the destination as it comes (no parsing), gathered into
WRITE_BYTES writes since each COPY message is a single row. A NULL is an empty field,
an empty string is `""`, dates are ISO and decimals use a point, as PostgreSQL writes
them.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.export.destination import Destination, WrittenFile

WRITE_BYTES = 4 * 2**20


def write_csv(
    connection: psycopg.Connection, query: sql.Composable, destination: Destination, folder: str
) -> list[WrittenFile]:
    """The query's rows as `folder/part-00000.csv`."""
    path = f"{folder}/part-00000.csv"
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(query)
    output = destination.open(path)
    try:
        with connection.cursor() as cursor:
            with cursor.copy(statement) as copy:
                pending: list[bytes] = []
                pending_bytes = 0
                for row in copy:
                    pending.append(row)
                    pending_bytes += len(row)
                    if pending_bytes >= WRITE_BYTES:
                        output.write(b"".join(pending))
                        pending, pending_bytes = [], 0
                output.write(b"".join(pending))
            rows = cursor.rowcount
    finally:
        output.close()
    return [WrittenFile(destination.relative(path), rows, output.bytes, output.sha256)]
