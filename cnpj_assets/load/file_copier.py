"""COPY a table's files batch by batch, with their audit contexts, as one pipeline.

A file's audit context closes only after its last batch is COPYed, but the next file's
batches need not wait for that: closing a file is queued behind its batches, and the
next file's first batch is submitted at once: draining the COPY streams at every file
boundary left a stream idle for a sub-batch per file.

On error, every file still open is closed FAILED with the error, except a file whose
batches had all been COPYed before it: that one completes, so a resume skips it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg

from cnpj_assets.audit import AuditNode, AuditService
from cnpj_assets.landing import ReleaseFile
from cnpj_assets.load.progress import FileProgress, TableProgress
from cnpj_assets.load.resume import CARRIED_FILE_FIELDS, FileResume, uncovered
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.copy_pool import CopyPool, results_in_order
from cnpj_assets.postgres.writer import copy_rows
from cnpj_assets.reader import Batch, ExtractedMember, FileRead, RowSpan, SubBatch

# Batches submitted to the COPY streams and not yet closed. With one, the streams
# idled while the main thread made the audit round trips of the next batch; three
# gave no more than two.
BATCHES_IN_FLIGHT = 2


@dataclass(frozen=True)
class ReadStep:
    """One step of the read stream: a file opening (no batch), or one of its batches."""

    file: ReleaseFile
    member: ExtractedMember | Exception | None
    read: FileRead | None
    batch: Batch | None = None


@dataclass
class _OpenFile:
    """A file whose audit context is open; it closes once its last batch has."""

    stack: ExitStack
    node: AuditNode
    read: FileRead | None = None
    progress: FileProgress | None = None
    covered: list[tuple[int, int]] = field(default_factory=list)
    batch_spans: list[tuple[int, RowSpan]] = field(default_factory=list)
    subbatch_spans: list[tuple[int, RowSpan]] = field(default_factory=list)
    error: BaseException | None = None  # set when one of its batches failed

    def fail(self, error: BaseException) -> None:
        """Close the context FAILED with the error and drop the scratch member."""
        self.stack.__exit__(type(error), error, error.__traceback__)
        if self.read is not None:
            self.read.member.path.unlink(missing_ok=True)


@dataclass
class _InFlight:
    """A batch whose sub-batches were submitted to the COPY streams."""

    file: _OpenFile
    context: AbstractContextManager[AuditNode]
    futures: list[Future]


class FileCopier:
    """Loads a table's files into a child table, with their audit contexts."""

    def __init__(
        self,
        audit: AuditService,
        pool: CopyPool,
        child: tables.LoadingChild,
        table_node: AuditNode,
        progress: TableProgress,
        subbatch_rows: int,
        say: Callable[[str], None],
    ) -> None:
        self.audit = audit
        self.pool = pool
        self.child = child
        self.table_node = table_node
        self.progress = progress
        self.subbatch_rows = subbatch_rows
        self.say = say
        self._pending: deque[_InFlight | _OpenFile] = deque()

    def copy_files(
        self,
        files: Iterator[tuple[ReadStep, Iterator[Batch]]],
        resumes: dict[str, FileResume],
    ) -> None:
        """Each file's opening step with its batches; `resumes` by zip name."""
        current: _OpenFile | None = None
        try:
            for opened, batches in files:
                current = self._open(opened, resumes.get(opened.file.zip_name))
                if current.read is not None:
                    for batch in batches:
                        self._pending.append(self._submit(current, batch))
                        self._settle(BATCHES_IN_FLIGHT)
                self._pending.append(current)
                current = None
            self._settle(0)
        except BaseException as error:
            self._abort(current, error)
            raise

    def _open(self, opened: ReadStep, resume: FileResume | None) -> _OpenFile:
        """Enter the file's audit context; a file that cannot be read fails right here."""
        stack = ExitStack()
        node = stack.enter_context(self.audit.file_context(self.table_node, opened.file.zip_name))
        open_file = _OpenFile(stack, node, opened.read)
        try:
            if resume is not None:
                node.rows += resume.carried_rows
                node.extra["resumed_rows"] = resume.carried_rows
                open_file.covered = resume.covered
                if resume.completed is not None:
                    self._carry_completed_file(node, resume.completed)
                    return open_file
            member = opened.member
            if not isinstance(member, ExtractedMember):
                raise member or RuntimeError(f"{opened.file.zip_name} was not extracted")
            node.extra.update(
                {
                    "member_name": member.member_name,
                    "sha256": member.zip_sha256,
                    "zip_bytes": member.zip_bytes,
                    "member_bytes": member.stats.bytes,
                    "lines": member.stats.physical_lines,
                }
            )
            self._add_bytes_read(member.stats.bytes)
            open_file.progress = self.progress.file_started()
        except BaseException as error:
            open_file.fail(error)
            raise
        return open_file

    def _carry_completed_file(self, node: AuditNode, completed: dict[str, Any]) -> None:
        """A file a dead load finished: its rows stay, its audit numbers carry over."""
        node.rejects += int(completed["rejects"])
        carried = {name: completed[name] for name in CARRIED_FILE_FIELDS}
        carried["invalid_values"] = psycopg.types.json.Jsonb(carried["invalid_values"])
        node.extra.update(carried)
        self.audit.carry_check_counts(node, int(completed["id"]))
        member_bytes = int(completed["member_bytes"] or 0)
        self._add_bytes_read(member_bytes)
        self.progress.done_bytes += member_bytes
        self.say(f"{completed['zip_name']}: already loaded by the resumed load, skipped")

    def _add_bytes_read(self, member_bytes: int) -> None:
        """The table's `bytes_read`: members read now, or by the load being resumed."""
        self.table_node.extra["bytes_read"] = (
            self.table_node.extra.get("bytes_read", 0) + member_bytes
        )

    def _submit(self, open_file: _OpenFile, batch: Batch) -> _InFlight:
        span = batch.span
        context = self.audit.batch_context(open_file.node, batch.index, *_rows(span))
        node = context.__enter__()
        open_file.batch_spans.append((node.id, span))
        try:
            futures = [
                self.pool.submit(partial(_copy_subbatch, self.audit, node, self.child, part))
                for sub in batch.subbatches(self.subbatch_rows)
                for part in sub.parts(uncovered(*_rows(sub.span), open_file.covered))
            ]
        except BaseException as error:
            context.__exit__(type(error), error, error.__traceback__)
            raise
        return _InFlight(open_file, context, futures)

    def _settle(self, batches_left: int) -> None:
        """Close the oldest batches until `batches_left` are in flight, and files behind them."""
        while self._pending and (
            isinstance(self._pending[0], _OpenFile)
            or sum(isinstance(e, _InFlight) for e in self._pending) > batches_left
        ):
            entry = self._pending.popleft()
            if isinstance(entry, _OpenFile):
                self._close_file(entry)
            else:
                self._close_batch(entry)

    def _close_batch(self, entry: _InFlight) -> None:
        open_file = entry.file
        try:
            spans = results_in_order(entry.futures)
        except BaseException as error:
            entry.context.__exit__(type(error), error, error.__traceback__)
            open_file.error = error
            raise
        entry.context.__exit__(None, None, None)
        open_file.subbatch_spans.extend(spans)
        if open_file.read is not None and open_file.progress is not None:
            member = open_file.read.member
            self.say(
                open_file.progress.report(
                    member.zip_path.name,
                    open_file.node.rows,
                    member.stats.physical_lines,
                    member.stats.bytes,
                )
            )

    def _close_file(self, open_file: _OpenFile) -> None:
        """Record what the whole read found (rejects, line ranges), then COMPLETED."""
        read = open_file.read
        try:
            if read is not None:
                self._record_read(open_file, read)
                if open_file.progress is not None:
                    open_file.progress.finished(read.member.stats.bytes)
        except BaseException as error:
            open_file.fail(error)
            raise
        if read is not None:
            read.member.path.unlink(missing_ok=True)
        open_file.stack.close()

    def _record_read(self, open_file: _OpenFile, read: FileRead) -> None:
        result = read.result
        node = open_file.node
        self.audit.record_rejects(
            node, [(r.line, r.record, r.raw, r.reason) for r in result.rejects]
        )
        self.audit.set_line_ranges(
            "batch_load", [(*result.lines(s), i) for i, s in open_file.batch_spans]
        )
        self.audit.set_line_ranges(
            "subbatch_load", [(*result.lines(s), i) for i, s in open_file.subbatch_spans]
        )
        self.audit.record_check_counts(
            self.table_node.id,
            node.id,
            [
                count.audit_row(lambda row: result.lines(RowSpan(row, row))[0])
                for count in result.check_counts
            ],
        )
        node.extra.update(
            {
                "invalid_values": psycopg.types.json.Jsonb(result.invalid_values),
                "blank_lines": len(result.blank_lines),
                "continuation_lines": result.continuation_lines,
                "header_lines": result.header_lines,
            }
        )
        if result.rejects:
            self.say(
                f"{self.child.spec.name} {read.member.zip_path.name}: {len(result.rejects)} "
                "rejected lines quarantined in cnpj_audit.rejected_row"
            )

    def _abort(self, current: _OpenFile | None, error: BaseException) -> None:
        """Close what is still open after `error`, oldest first (see the module docstring)."""
        while self._pending:
            entry = self._pending.popleft()
            if isinstance(entry, _InFlight):
                wait(entry.futures)
                if entry.file is current or entry.file.error is not None:
                    entry.context.__exit__(type(error), error, error.__traceback__)
                    entry.file.error = entry.file.error or error
                    continue
                try:
                    self._close_batch(entry)
                except Exception:  # recorded on the file, which fails below
                    continue
            elif entry.error is not None:
                entry.fail(entry.error)
            else:
                try:
                    self._close_file(entry)
                except Exception:  # _close_file has closed it FAILED
                    continue
        if current is not None:
            current.fail(error)


def _rows(span: RowSpan) -> tuple[int, int]:
    return span.first_row, span.last_row


def _copy_subbatch(
    audit: AuditService,
    batch_node: AuditNode,
    child: tables.LoadingChild,
    sub: SubBatch,
    connection: psycopg.Connection,
) -> tuple[int, RowSpan]:
    """One sub-batch: its audit context around one COPY, on a pool stream's connection."""
    span = sub.span
    with audit.subbatch_context(batch_node, sub.index, span.first_row, span.last_row) as node:
        node.bytes = copy_rows(connection, child, sub.data, node.id)
        node.rows = sub.data.num_rows
    return node.id, span
