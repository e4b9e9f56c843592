"""Load one table of one release: the audit contexts around reader and writer.

This is the whole data path, free of Dagster so it can be tested and benchmarked on
its own; the assets call it and turn its summary into metadata.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any

import psycopg

from cnpj_assets.audit import AuditNode, AuditService, audit_tree
from cnpj_assets.landing import Release, ReleaseFile
from cnpj_assets.postgres import load_lock, tables
from cnpj_assets.postgres.copy_pool import CopyPool, results_in_order
from cnpj_assets.postgres.writer import copy_rows
from cnpj_assets.progress import FileProgress, TableProgress
from cnpj_assets.reader import (
    Batch,
    ExtractedMember,
    FileRead,
    ReaderSettings,
    RowSpan,
    SubBatch,
    extract_member,
    read_member,
)
from cnpj_assets.reader.prefetch import prefetched
from cnpj_assets.resume import (
    CARRIED_FILE_FIELDS,
    FileResume,
    adopt_child,
    drop_leftovers,
    plan_resume,
    uncovered,
)
from cnpj_assets.specs import TableSpec

ProgressCallback = Callable[[str], None]
BATCHES_IN_FLIGHT = 1  # a batch's COPYs may still run while the next batch is queued behind


@dataclass(frozen=True)
class LoadSettings:
    """Sizes and places of a load; every field is a Dagster resource setting too."""

    scratch_dir: Path
    batch_rows: int = ReaderSettings.batch_rows
    subbatch_rows: int = 25_000
    encoding: str = ReaderSettings.encoding
    duckdb_threads: int = ReaderSettings.duckdb_threads
    duckdb_memory_limit: str = ReaderSettings.duckdb_memory_limit
    copy_streams: int = 2
    full_reload: bool = False  # ignore what an unfinished load left and start over
    retries: int = 3  # after a lost PostgreSQL connection
    retry_backoff_seconds: float = 2.0  # doubled at each retry

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(
            batch_rows=self.batch_rows,
            encoding=self.encoding,
            duckdb_threads=self.duckdb_threads,
            duckdb_memory_limit=self.duckdb_memory_limit,
        )


class LoadRetriesExhausted(RuntimeError):
    """The PostgreSQL connection kept failing; the message says how often and why."""


@dataclass
class TableLoadSummary:
    """What a table load did, with its audit tree."""

    table_load_id: int
    target_table: str
    tree: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """Who asked for the load, for the table_load row."""

    asset_key: str | None = None
    partition_key: str | None = None
    dagster_run_id: str | None = None


class TableLoader:
    """Loads one table of one release into a fresh child, then swaps it in."""

    def __init__(
        self,
        database_url: str,
        settings: LoadSettings,
        progress: ProgressCallback = print,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.progress = progress

    def load(
        self, spec: TableSpec, release: Release, run: RunInfo | None = None
    ) -> TableLoadSummary:
        """Load every file the release has for this table; a missing one is an error."""
        return self.load_files(spec, release.name, release.files_for(spec.name), run)

    def load_files(
        self,
        spec: TableSpec,
        release: str,
        files: tuple[ReleaseFile, ...],
        run: RunInfo | None = None,
    ) -> TableLoadSummary:
        """Load exactly these files as the table's release (benchmarks load one big file).

        A lost connection (PostgreSQL restarted, a backend killed, the network cut) is
        retried with exponential back-off, a bounded number of times; each retry
        resumes from the sub-batches already committed, so nothing is copied twice.
        """
        run = run or RunInfo()
        for attempt in range(1, self.settings.retries + 2):
            try:
                return self._attempt(spec, release, files, run)
            except psycopg.OperationalError as error:
                if attempt > self.settings.retries:
                    raise LoadRetriesExhausted(
                        f"{spec.name} {release}: the PostgreSQL connection failed on all "
                        f"{attempt} attempts; last error: {error}"
                    ) from error
                delay = self.settings.retry_backoff_seconds * 2 ** (attempt - 1)
                self.progress(
                    f"{spec.name} {release}: PostgreSQL connection lost ({error}); retrying "
                    f"in {delay:.1f} s, resuming from the committed sub-batches"
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _attempt(
        self, spec: TableSpec, release: str, files: tuple[ReleaseFile, ...], run: RunInfo
    ) -> TableLoadSummary:
        audit = AuditService(self.database_url)
        try:
            with psycopg.connect(self.database_url, autocommit=True) as data:
                self._lock(audit, data, spec, release, run)
                try:
                    return self._load(audit, data, spec, release, files, run)
                finally:
                    load_lock.unlock(data, spec.name, release)
        finally:
            audit.close()

    def _lock(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        spec: TableSpec,
        release: str,
        run: RunInfo,
    ) -> None:
        """Take the table's load lock, then close what dead runs left RUNNING."""
        if not load_lock.try_lock(data, spec.name, release):
            holders = ", ".join(
                f"run {run_id or '(outside Dagster)'} (table_load {load_id}, since {started})"
                for load_id, run_id, started in audit.running_loads(spec.name, release)
            )
            raise load_lock.LoadLockedError(
                f"{spec.name} {release} is already being loaded by {holders or 'another process'}; "
                "wait for it to finish or stop it"
            )
        me = f"run {run.dagster_run_id}" if run.dagster_run_id else "a later load"
        for dead in audit.abandon_dead_loads(spec.name, release, me):
            self.progress(
                f"{spec.name} {release}: table_load {dead} was left RUNNING by a dead run; "
                "marked ABANDONED"
            )

    def _load(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        spec: TableSpec,
        release: str,
        files: tuple[ReleaseFile, ...],
        run: RunInfo,
    ) -> TableLoadSummary:
        dagster = {
            "asset_key": run.asset_key,
            "partition_key": run.partition_key,
            "dagster_run_id": run.dagster_run_id,
        }
        plan, why = (
            (None, "a full reload was asked for")
            if self.settings.full_reload
            else plan_resume(audit.connection, data, spec, release, files)
        )
        keep = plan.table_load_id if plan else None
        for dropped in drop_leftovers(data, spec, release, keep):
            self.progress(f"{spec.name} {release}: dropped the unfinished table of load {dropped}")
        with audit.table_context(spec.name, release, resumed_from=keep, **dagster) as table_node:
            if plan is None:
                child = tables.create_loading_child(data, spec, release, table_node.id)
            else:
                child = adopt_child(data, plan, table_node.id)
                self.progress(f"{spec.name} {release}: {why}")
            resumes = plan.files if plan else {}
            progress = TableProgress.for_files(spec.name, [file.path for file in files])
            done = {name for name, r in resumes.items() if r.completed is not None}
            scratch = self.settings.scratch_dir / f"load{table_node.id}"
            try:
                extracted = prefetched(_extracted(_smallest_first(files), scratch, done))
                steps = prefetched(_read_steps(spec, extracted, self.settings.reader_settings()))
                with (
                    closing(steps),
                    CopyPool(self.database_url, self.settings.copy_streams) as pool,
                ):
                    for _, file_steps in groupby(steps, key=lambda step: step.file.zip_name):
                        opened, batches = _opening_and_batches(file_steps)
                        resume = resumes.get(opened.file.zip_name)
                        self._load_file(
                            audit, pool, child, table_node, opened, batches, resume, progress
                        )
                self.progress(f"{spec.name}: building key and indexes on {table_node.rows:,} rows")
                indexing_started = time.perf_counter()
                duplicates = tables.build_indexes(data, child)
                index_seconds = time.perf_counter() - indexing_started
                target = tables.swap_in(data, child)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            table_node.extra.update(
                {
                    "target_table": target,
                    "duplicate_keys": duplicates,
                    "index_seconds": index_seconds,
                }
            )
        return TableLoadSummary(table_node.id, target, audit_tree(audit.connection, table_node.id))

    def _load_file(
        self,
        audit: AuditService,
        pool: CopyPool,
        child: tables.LoadingChild,
        table_node: AuditNode,
        opened: _ReadStep,
        batches: Iterator[Batch],
        resume: FileResume | None,
        progress: TableProgress,
    ) -> None:
        file, member, read = opened.file, opened.member, opened.read
        with audit.file_context(table_node, file.zip_name) as file_node:
            covered: list[tuple[int, int]] = []
            if resume is not None:
                file_node.rows += resume.carried_rows
                file_node.extra["resumed_rows"] = resume.carried_rows
                covered = resume.covered
            if resume is not None and resume.completed is not None:
                self._carry_completed_file(table_node, file_node, resume.completed)
                progress.done_bytes += int(resume.completed["member_bytes"] or 0)
                return
            if member is None or isinstance(member, Exception):
                raise member or RuntimeError(f"{file.zip_name} was not extracted")
            try:
                file_node.extra.update(
                    {
                        "member_name": member.member_name,
                        "sha256": member.zip_sha256,
                        "zip_bytes": member.zip_bytes,
                        "member_bytes": member.stats.bytes,
                        "lines": member.stats.physical_lines,
                    }
                )
                table_node.extra["bytes_read"] = (
                    table_node.extra.get("bytes_read", 0) + member.stats.bytes
                )
                assert read is not None, "a file with an extracted member has a read"
                file_progress = progress.file_started()
                self._copy_batches(
                    audit, pool, child, file_node, read, batches, covered, file_progress
                )
                file_progress.finished(member.stats.bytes)
            finally:
                member.path.unlink(missing_ok=True)

    def _carry_completed_file(
        self, table_node: AuditNode, file_node: AuditNode, completed: dict[str, Any]
    ) -> None:
        """A file a dead load finished: its rows stay, its audit numbers carry over."""
        file_node.rejects += int(completed["rejects"])
        carried = {name: completed[name] for name in CARRIED_FILE_FIELDS}
        carried["invalid_values"] = psycopg.types.json.Jsonb(carried["invalid_values"])
        file_node.extra.update(carried)
        table_node.extra["bytes_read"] = table_node.extra.get("bytes_read", 0) + int(
            completed["member_bytes"] or 0
        )
        self.progress(f"{completed['zip_name']}: already loaded by the resumed load, skipped")

    def _copy_batches(
        self,
        audit: AuditService,
        pool: CopyPool,
        child: tables.LoadingChild,
        file_node: AuditNode,
        read: FileRead,
        batches: Iterator[Batch],
        covered: list[tuple[int, int]],
        progress: FileProgress,
    ) -> None:
        """COPY the file's batches; `read.result` is complete once `batches` is exhausted."""
        member = read.member
        batch_spans: list[tuple[int, RowSpan]] = []
        subbatch_spans: list[tuple[int, RowSpan]] = []
        in_flight: deque[tuple[AbstractContextManager[AuditNode], list[Future]]] = deque()

        def close_oldest() -> None:
            subbatch_spans.extend(_close_batch(*in_flight.popleft()))
            self.progress(
                progress.report(
                    member.zip_path.name,
                    file_node.rows,
                    member.stats.physical_lines,
                    member.stats.bytes,
                )
            )

        try:
            for batch in batches:
                span = batch.span
                context = audit.batch_context(file_node, batch.index, span.first_row, span.last_row)
                node = context.__enter__()
                batch_spans.append((node.id, span))
                futures = [
                    pool.submit(partial(_copy_subbatch, audit, node, child, part))
                    for sub in batch.subbatches(self.settings.subbatch_rows)
                    for part in sub.parts(uncovered(sub.span.first_row, sub.span.last_row, covered))
                ]
                in_flight.append((context, futures))
                while len(in_flight) > BATCHES_IN_FLIGHT:
                    close_oldest()
            while in_flight:
                close_oldest()
        except BaseException as error:
            while in_flight:
                context, futures = in_flight.popleft()
                wait(futures)
                context.__exit__(type(error), error, error.__traceback__)
            raise
        result = read.result
        audit.record_rejects(
            file_node, [(r.line, r.record, r.raw, r.reason) for r in result.rejects]
        )
        audit.set_line_ranges("batch_load", [(*result.lines(s), i) for i, s in batch_spans])
        audit.set_line_ranges("subbatch_load", [(*result.lines(s), i) for i, s in subbatch_spans])
        file_node.extra.update(
            {
                "invalid_values": psycopg.types.json.Jsonb(result.invalid_values),
                "blank_lines": len(read.member.stats.blank_lines),
                "continuation_lines": result.continuation_lines,
            }
        )
        if result.rejects:
            self.progress(
                f"{child.spec.name} {read.member.zip_path.name}: {len(result.rejects)} rejected "
                f"lines quarantined in cnpj_audit.rejected_row"
            )


def _close_batch(
    context: AbstractContextManager[AuditNode], futures: list[Future]
) -> list[tuple[int, RowSpan]]:
    """Wait for a batch's sub-batches, then close its audit context (FAILED on error)."""
    try:
        spans = results_in_order(futures)
    except BaseException as error:
        context.__exit__(type(error), error, error.__traceback__)
        raise
    context.__exit__(None, None, None)
    return spans


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


def _extracted(
    files: tuple[ReleaseFile, ...], scratch: Path, skip: set[str]
) -> Iterator[tuple[ReleaseFile, ExtractedMember | Exception | None]]:
    """Each file with its extracted member (None if skipped), or the error that names it.

    Run through `prefetched`, the next zip inflates while the current one is COPYed;
    an error is handed over, not raised, so it fails the right file's audit context.
    """
    for file in files:
        if file.zip_name in skip:
            yield file, None
            continue
        try:
            yield file, extract_member(file.path, scratch)
        except Exception as error:  # raised again inside that file's context
            yield file, error


@dataclass(frozen=True)
class _ReadStep:
    """One step of the read stream: a file opening (no batch), or one of its batches."""

    file: ReleaseFile
    member: ExtractedMember | Exception | None
    read: FileRead | None
    batch: Batch | None = None


def _read_steps(
    spec: TableSpec,
    extracted: Iterator[tuple[ReleaseFile, ExtractedMember | Exception | None]],
    settings: ReaderSettings,
) -> Iterator[_ReadStep]:
    """Every file's opening step, then its batches, as one stream across the files.

    Run through `prefetched`, DuckDB starts on the next file while the current file's
    last COPYs finish: with a stream per file, both cores idled at every file boundary
    (a 2 M-row release of ten zips spent a third of its time there). A file's read
    result is complete before the next file's opening step is yielded.
    """
    for file, member in extracted:
        if not isinstance(member, ExtractedMember):
            yield _ReadStep(file, member, None)
            continue
        read = read_member(spec, member, settings)
        yield _ReadStep(file, member, read)
        for batch in read.batches():
            yield _ReadStep(file, member, read, batch)


def _opening_and_batches(file_steps: Iterator[_ReadStep]) -> tuple[_ReadStep, Iterator[Batch]]:
    """A file's steps split into its opening step and the lazy stream of its batches."""
    opened = next(file_steps)
    return opened, (step.batch for step in file_steps if step.batch is not None)


def _smallest_first(files: tuple[ReleaseFile, ...]) -> tuple[ReleaseFile, ...]:
    """The files in the order that starts COPY soonest: smallest zip first.

    Nothing is COPYed until the first zip is inflated and counted; a real release's
    Estabelecimentos0 is four times its siblings (1.3 GB zipped), so starting there
    kept PostgreSQL idle for seconds. Later zips inflate while earlier ones load.
    """
    return tuple(sorted(files, key=lambda file: (file.path.stat().st_size, file.zip_name)))
