"""A query's rows as one CSV file: PostgreSQL's own CSV, UTF-8, with a header.

psql's COPY output goes to the destination as it comes, in WRITE_BYTES blocks, without
parsing. A NULL is an empty field, an empty string is `""`, dates are ISO and decimals
use a point, as PostgreSQL writes them.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from cnpj_assets.export.destination import Destination, WrittenFile
from cnpj_assets.export.rows import CopyOut

WRITE_BYTES = 4 * 2**20


def write_csv(
    connection: psycopg.Connection, query: sql.Composable, destination: Destination, folder: str
) -> list[WrittenFile]:
    """The query's rows as `folder/part-00000.csv`."""
    path = f"{folder}/part-00000.csv"
    output = destination.open(path)
    try:
        with CopyOut(connection, query, header=True) as copy:
            while block := copy.stream.read(WRITE_BYTES):
                output.write(block)
            rows = copy.finish()
    finally:
        output.close()
    return [WrittenFile(destination.relative(path), rows, output.bytes, output.sha256)]
