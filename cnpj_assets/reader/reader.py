"""Read one extracted CSV member with DuckDB and yield typed Arrow batches.

A batch is a run of consecutive good rows of one file; a sub-batch is a slice of it
(one COPY into PostgreSQL). Both carry a RowSpan: their row ordinals and their position
among the file's "free" lines, which the LineMap turns into physical line numbers once
DuckDB has reported the rejects. When the file is exhausted, the accounting must hold:
physical lines = lines of loaded rows + lines of rejected records + blank lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cnpj_assets.quality.tally import CheckCount, FileTally
from cnpj_assets.reader.line_map import LineMap, RejectPosition
from cnpj_assets.reader.member import ExtractedMember, find_blank_lines
from cnpj_assets.reader.typing_sql import (
    GIVEN_PREFIX,
    NEWLINE_COUNT_COLUMN,
    ReadOptions,
    newline_counts_select,
    typed_columns_with_flags,
    typed_select,
)
from cnpj_assets.specs import TableSpec


class AccountingError(RuntimeError):
    """The parser's rows and rejects do not add up to the lines of the file."""


class HeaderError(ValueError):
    """A file whose format has a header names other columns than its spec's."""


UTF8_BOM = b"\xef\xbb\xbf"


def check_header(spec: TableSpec, member: ExtractedMember, encoding: str) -> int:
    """The header lines of the member (0 or 1); a header naming other columns fails the file.

    Names compare without case, spaces or quotes: the folder's files have written them
    in upper and in lower case.
    """
    if not spec.csv.header:
        return 0
    with open(member.path, "rb") as handle:
        first = handle.readline().removeprefix(UTF8_BOM).decode(encoding).strip()
    found = [name.strip().strip('"').strip().lower() for name in first.split(spec.csv.delimiter)]
    expected = [column.name for column in spec.file_columns]
    if found != expected:
        raise HeaderError(
            f"{member.zip_path.name} ({member.member_name}): the header names {found}, "
            f"expected {expected} (any case)"
        )
    return 1


@dataclass(frozen=True)
class ReaderSettings:
    """Knobs of the read; defaults suit a 2-core machine with a few GiB to spare.

    Up to five batches of a file are alive at once (being read, queued, two in flight,
    one closing), and up to two of the next file's, read ahead; so the batch size sets
    most of the memory, and 50 k rows keep it flat at the same speed. One DuckDB thread
    outruns the COPY streams, which already keep both cores busy; a second one adds
    memory and no speed.
    """

    batch_rows: int = 50_000
    encoding: str = "latin-1"
    duckdb_threads: int = 1
    duckdb_memory_limit: str = "512MB"
    max_line_size: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class RowSpan:
    """A run of consecutive good rows of one file, by 0-based ordinal among good rows."""

    first_row: int
    last_row: int

    @property
    def rows(self) -> int:
        return self.last_row - self.first_row + 1


@dataclass(frozen=True)
class SubBatch:
    data: pa.Table
    span: RowSpan
    index: int

    def parts(self, ranges: list[tuple[int, int]]) -> list[SubBatch]:
        """The slices of this sub-batch covering the given row ranges (a resume's gaps)."""
        if ranges == [(self.span.first_row, self.span.last_row)]:
            return [self]
        start = self.span.first_row
        return [
            SubBatch(
                self.data.slice(first - start, last - first + 1), RowSpan(first, last), self.index
            )
            for first, last in ranges
        ]


@dataclass(frozen=True)
class Batch:
    """A run of consecutive rows of a file, `batch_rows` long (the last may be shorter)."""

    data: pa.Table
    span: RowSpan
    index: int

    def subbatches(self, rows: int) -> Iterator[SubBatch]:
        for number, offset in enumerate(range(0, self.data.num_rows, rows)):
            length = min(rows, self.data.num_rows - offset)
            first_row = self.span.first_row + offset
            span = RowSpan(first_row, first_row + length - 1)
            yield SubBatch(self.data.slice(offset, length), span, number)


@dataclass(frozen=True)
class Reject:
    """A record the parser refused, kept with its raw text and reason."""

    line: int  # physical 1-based line where the record starts
    record: int  # DuckDB's record number
    raw: str
    reason: str


@dataclass
class FileReadResult:
    """What the whole file gave, known once the batches are exhausted."""

    rows: int = 0
    rejects: list[Reject] = field(default_factory=list)
    invalid_values: dict[str, int] = field(default_factory=dict)
    blank_lines: list[int] = field(default_factory=list)
    line_map: LineMap | None = None
    continuation_lines: int = 0  # lines past the first of records with newlines in quotes
    check_counts: list[CheckCount] = field(default_factory=list)  # what the tally counted
    header_lines: int = 0  # a first line naming the columns, where the format has one

    def lines(self, span: RowSpan) -> tuple[int, int]:
        """First and last physical line of a span's records."""
        if self.line_map is None:
            raise RuntimeError("lines are known once the whole file has been read")
        return self.line_map.first_line(span.first_row), self.line_map.last_line(span.last_row)


class FileRead:
    """One pass of DuckDB over one member: iterate `batches()`, then read `result`."""

    def __init__(
        self,
        spec: TableSpec,
        member: ExtractedMember,
        settings: ReaderSettings,
        tally: FileTally | None = None,
    ) -> None:
        self.spec = spec
        self.member = member
        self.settings = settings
        self.tally = tally
        self.result = FileReadResult(invalid_values={c: 0 for c in typed_columns_with_flags(spec)})
        self._multiline_rows: dict[int, int] = {}
        self._started = False

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect(
            config={
                "threads": self.settings.duckdb_threads,
                "memory_limit": self.settings.duckdb_memory_limit,
                "preserve_insertion_order": True,
            }
        )
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"SET temp_directory = '{self.member.path.parent / 'duckdb_tmp'}'")
        return connection

    def batches(self) -> Iterator[Batch]:
        """The file's batches, once: a second pass would count every row twice."""
        if self._started:
            raise RuntimeError(f"{self.member.zip_path.name} has already been read")
        self._started = True
        self.result.header_lines = check_header(self.spec, self.member, self.settings.encoding)
        options = ReadOptions(
            encoding=self.settings.encoding,
            max_line_size=self.settings.max_line_size,
            strip_nul=self.member.stats.nul_bytes > 0,
        )
        sql = typed_select(self.spec, str(self.member.path), options)
        connection = self._connect()
        try:
            stream = connection.sql(sql).to_arrow_reader(self.settings.batch_rows)
            next_row = 0
            for index, chunks in enumerate(_regrouped(stream, self.settings.batch_rows)):
                batch = self._to_batch(pa.Table.from_batches(chunks), index, next_row)
                next_row = batch.span.last_row + 1
                yield batch
            self._finish(connection, options)
        finally:
            connection.close()

    def _to_batch(self, raw: pa.Table, index: int, first_row: int) -> Batch:
        for column in self.result.invalid_values:
            given = pc.sum(raw.column(GIVEN_PREFIX + column)).as_py() or 0
            typed = raw.num_rows - raw.column(column).null_count
            self.result.invalid_values[column] += given - typed
        self.result.rows += raw.num_rows
        span = RowSpan(first_row, first_row + raw.num_rows - 1)
        data = raw.select(list(self.spec.column_names))
        if self.tally is not None:
            self.tally.observe(data, first_row)
        return Batch(data, span, index)

    def _finish(self, connection: duckdb.DuckDBPyConnection, options: ReadOptions) -> None:
        records = connection.execute(
            "SELECT line, any_value(csv_line), "
            "string_agg(error_type || ': ' || error_message, '; ') "
            "FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
        positions = [RejectPosition(record, (raw or "").count("\n")) for record, raw, _ in records]
        line_map = self._line_map(connection, options, positions)
        self.result.line_map = line_map
        self.result.continuation_lines = sum(self._multiline_rows.values()) + sum(
            p.newlines for p in positions
        )
        self.result.rejects = [
            Reject(line_map.reject_lines[record], record, raw or "", reason)
            for record, raw, reason in records
        ]
        if self.tally is not None:
            self.result.check_counts = self.tally.counts

    def _line_map(
        self,
        connection: duckdb.DuckDBPyConnection,
        options: ReadOptions,
        rejects: list[RejectPosition],
    ) -> LineMap:
        """Place rows and rejects on lines; look for blank and continuation lines if needed.

        Blank lines and newlines inside quoted fields only ever add lines, so when the
        rows and rejected records alone account for every line of the byte count, the
        file has neither. Otherwise the blank lines are found in the bytes, then, if
        lines are still missing, the rows with newlines by a second DuckDB pass.
        """
        if not self._accounts_for_every_line(rejects):
            self.result.blank_lines = find_blank_lines(self.member.path)
        if not self._accounts_for_every_line(rejects):
            self._multiline_rows = self._rows_with_newlines(connection, options)
        try:
            line_map = self._placed(rejects)
        except ValueError as error:
            raise self._accounting_error(f"lines cannot be placed ({error})") from error
        if line_map.lines_accounted != self.member.stats.physical_lines:
            raise self._accounting_error(
                f"rows, rejects and blanks account for {line_map.lines_accounted}"
            )
        return line_map

    def _placed(self, rejects: list[RejectPosition]) -> LineMap:
        return LineMap(
            self.result.rows,
            self.result.blank_lines,
            rejects,
            self._multiline_rows,
            self.result.header_lines,
        )

    def _accounts_for_every_line(self, rejects: list[RejectPosition]) -> bool:
        """True if what is known so far places rows and rejects on every line."""
        try:
            return self._placed(rejects).lines_accounted == self.member.stats.physical_lines
        except ValueError:  # events misplaced by lines not found yet
            return False

    def _rows_with_newlines(
        self, connection: duckdb.DuckDBPyConnection, options: ReadOptions
    ) -> dict[int, int]:
        """Good rows (0-based ordinal) whose quoted fields hold newlines, and how many."""
        sql = newline_counts_select(self.spec, str(self.member.path), options)
        rows: dict[int, int] = {}
        next_row = 0
        for chunk in connection.sql(sql).to_arrow_reader(self.settings.batch_rows):
            newlines = chunk.column(NEWLINE_COUNT_COLUMN)
            for position in pc.indices_nonzero(newlines).to_pylist():
                rows[next_row + position] = newlines[position].as_py()
            next_row += chunk.num_rows
        if next_row != self.result.rows:
            raise self._accounting_error(f"a second read gave {next_row} rows")
        return rows

    def _accounting_error(self, detail: str) -> AccountingError:
        return AccountingError(
            f"{self.member.zip_path.name} ({self.member.member_name}): "
            f"{self.member.stats.physical_lines} lines in the file, {self.result.rows} rows read, "
            f"{len(self.result.rejects)} rejected, "
            f"{len(self.result.blank_lines)} blank: {detail}"
        )


def _regrouped(stream: Iterator[pa.RecordBatch], rows: int) -> Iterator[list[pa.RecordBatch]]:
    """DuckDB's chunks gathered into runs of at least `rows` rows, without copying.

    DuckDB 2.0 hands out chunks of the size asked for (measured on estabelecimentos
    members: 50,000 rows each, the last one shorter), so a run is usually one chunk;
    gathering keeps a batch at least `rows` long should a chunk come shorter, so every
    COPY stream stays busy between batches.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for chunk in stream:
        pending.append(chunk)
        count += chunk.num_rows
        if count >= rows:
            yield pending
            pending, count = [], 0
    if pending:
        yield pending


def read_member(
    spec: TableSpec,
    member: ExtractedMember,
    settings: ReaderSettings | None = None,
    tally: FileTally | None = None,
) -> FileRead:
    """Start a read; the caller iterates `batches()` and then inspects `result`.

    With a tally, every batch is also counted for the quality checks, in the thread
    that reads it.
    """
    return FileRead(spec, member, settings or ReaderSettings(), tally)
