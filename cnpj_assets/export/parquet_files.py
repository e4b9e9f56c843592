"""Record batches into Parquet part files: ZSTD, row groups sized for readers.

Readers fetch and decode a row group at a time: too small and the footer, the seeks
and the per-group overhead dominate; too large and a reader holds it all in memory and
skips less. Rows are gathered until ROW_GROUP_BYTES of Arrow data, written as one row
group, and a part file holds up to ROW_GROUPS_PER_FILE of them so that engines split a
large table across workers. The rows come sorted by the table's key, so each row
group's min/max statistics on the key let a filter on `cnpj_basico` skip the others;
the order is declared in the files (`sorting_columns`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from cnpj_assets.export.destination import Destination, HashedOutput, WrittenFile

ROW_GROUP_BYTES = 256 * 2**20  # Arrow bytes gathered per row group
ROW_GROUPS_PER_FILE = 4
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3


class _Parts:
    """The part files of one folder, opened one after the other."""

    def __init__(
        self, destination: Destination, folder: str, schema: pa.Schema, sort: Sequence[str]
    ) -> None:
        self.destination = destination
        self.folder = folder
        self.schema = schema
        self.sorting = [pq.SortingColumn(schema.get_field_index(name)) for name in sort]
        self.written: list[WrittenFile] = []
        self._output: HashedOutput | None = None
        self._writer: pq.ParquetWriter | None = None
        self._path = ""
        self._rows = 0
        self._groups = 0

    def write_group(self, table: pa.Table) -> None:
        if self._writer is None or self._groups == ROW_GROUPS_PER_FILE:
            self.close()
            self._open()
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._rows += table.num_rows
        self._groups += 1

    def _open(self) -> None:
        self._path = f"{self.folder}/part-{len(self.written):05d}.parquet"
        self._output = self.destination.open(self._path)
        self._writer = pq.ParquetWriter(
            self._output,
            self.schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            sorting_columns=self.sorting or None,
            write_page_index=True,
        )
        self._rows = self._groups = 0

    def close(self) -> None:
        if self._writer is None or self._output is None:
            return
        self._writer.close()
        self._output.close()
        metadata = self._writer.writer.metadata
        uncompressed = sum(
            metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
        )
        self.written.append(
            WrittenFile(
                path=self.destination.relative(self._path),
                rows=self._rows,
                bytes=self._output.bytes,
                sha256=self._output.sha256,
                row_groups=metadata.num_row_groups,
                uncompressed_bytes=uncompressed,
            )
        )
        self._writer = self._output = None


def write_parquet(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    destination: Destination,
    folder: str,
    sort: Sequence[str] = (),
) -> list[WrittenFile]:
    """Write the batches (sorted by `sort`) as part files of `folder`; an empty table is
    one part file with the schema and no rows, so readers still find its columns."""
    parts = _Parts(destination, folder, schema, sort)
    pending: list[pa.RecordBatch] = []
    pending_bytes = groups = 0
    for batch in batches:
        pending.append(batch)
        pending_bytes += batch.nbytes
        if pending_bytes >= ROW_GROUP_BYTES:
            parts.write_group(pa.Table.from_batches(pending, schema))
            pending, pending_bytes, groups = [], 0, groups + 1
    if pending or groups == 0:
        parts.write_group(pa.Table.from_batches(pending, schema))
    parts.close()
    return parts.written
