"""Load one table of one release: the audit contexts around reader and writer.

This is the whole data path, free of Dagster so it can be tested and benchmarked on
its own; the assets call it and turn its summary into metadata.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

import psycopg

from cnpj_assets.audit import AuditNode, AuditService, audit_tree
from cnpj_assets.landing import Release, ReleaseFile
from cnpj_assets.load.file_copier import FileCopier, ReadStep
from cnpj_assets.load.progress import TableProgress
from cnpj_assets.load.resume import adopt_child, drop_leftovers, plan_resume
from cnpj_assets.postgres import load_lock, tables
from cnpj_assets.postgres.brief_locks import LockPolicy
from cnpj_assets.postgres.copy_pool import CopyPool
from cnpj_assets.quality.references import tally_plan
from cnpj_assets.quality.tally import TallyPlan
from cnpj_assets.reader import (
    Batch,
    ExtractedMember,
    FileRead,
    ReaderSettings,
    extract_member,
    read_member,
)
from cnpj_assets.reader.prefetch import Prefetched
from cnpj_assets.releases.space import check_space
from cnpj_assets.runs.stopping import LoadStopped, StopRequest
from cnpj_assets.specs import TableSpec

ProgressCallback = Callable[[str], None]


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
    lock_timeout_ms: int = LockPolicy.timeout_ms  # longest a swap makes readers queue
    lock_deadline_seconds: float = LockPolicy.deadline_seconds  # then the swap gives up
    disk_budget_gb: float | None = None  # for a server elsewhere: the space it may take

    def lock_policy(self) -> LockPolicy:
        return LockPolicy(self.lock_timeout_ms, self.lock_deadline_seconds)

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(
            batch_rows=self.batch_rows,
            encoding=self.encoding,
            duckdb_threads=self.duckdb_threads,
            duckdb_memory_limit=self.duckdb_memory_limit,
        )


class LoadRetriesExhausted(RuntimeError):
    """The PostgreSQL connection kept failing; the message says where, how often and why."""


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
        stop: StopRequest | None = None,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.progress = progress
        self.stop = stop or StopRequest()
        self._doing = ""  # the zip in hand, or the key build: what a lost server interrupted

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
        resumes from the sub-batches already committed, so nothing is copied twice. A
        stop asked of the run ends the load at its next batch, or at once while it
        waits to retry, and cancels the statement running on its data connection.
        """
        run = run or RunInfo()
        for attempt in range(1, self.settings.retries + 2):
            try:
                return self._attempt(spec, release, files, run)
            except LoadStopped as stopped:
                self.progress(str(stopped))  # the run's log may be what ended the run
                raise
            except psycopg.OperationalError as error:
                where = f"{spec.name} {release}" + (f" ({self._doing})" if self._doing else "")
                reason = " ".join(str(error).split())
                if self.stop.is_set() or attempt > self.settings.retries:
                    raise self._given_up(where, attempt, reason) from error
                delay = self.settings.retry_backoff_seconds * 2 ** (attempt - 1)
                self.progress(
                    f"{where}: PostgreSQL connection lost ({reason}); retrying in {delay:.1f} s, "
                    "resuming from the committed sub-batches"
                )
                if self.stop.wait(delay):
                    raise self._given_up(where, attempt, reason) from error
        raise AssertionError("unreachable: the loop returns or raises")

    def _given_up(self, where: str, attempts: int, reason: str) -> Exception:
        """Why a load that lost its connection ends, said as progress too.

        A lost server takes the run's log with it: this line then goes to stderr
        (runs/run_log.py), the only place it can still be read.
        """
        failure = (
            self.stop.stopped(where)
            if self.stop.is_set()
            else LoadRetriesExhausted(
                f"{where}: the PostgreSQL connection failed on all {attempts} attempts "
                f"({reason}); the next run resumes from the committed sub-batches"
            )
        )
        self.progress(str(failure))
        return failure

    def _attempt(
        self, spec: TableSpec, release: str, files: tuple[ReleaseFile, ...], run: RunInfo
    ) -> TableLoadSummary:
        audit = AuditService(self.database_url)
        try:
            with (
                psycopg.connect(self.database_url, autocommit=True) as data,
                self.stop.calling(partial(_cancel_quietly, data)),
            ):
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
                check_space(data, spec, release, files, self.settings.disk_budget_gb)
                child = tables.create_loading_child(data, spec, release, table_node.id)
            else:
                child = adopt_child(data, plan, table_node.id)
                self.progress(f"{spec.name} {release}: {why}")
            resumes = plan.files if plan else {}
            progress = TableProgress.for_files(spec.name, [file.path for file in files])
            done = {name for name, r in resumes.items() if r.completed is not None}
            scratch = self.settings.scratch_dir / f"load{table_node.id}"
            counted = tally_plan(data, spec, release)
            try:
                extracted = Prefetched(_extracted(_smallest_first(files), scratch, done))
                steps = _read_steps(spec, extracted, self.settings.reader_settings(), counted)
                with (
                    closing(extracted),  # closed last: no zip is inflated after the rmtree
                    closing(steps),
                    CopyPool(self.database_url, self.settings.copy_streams) as pool,
                ):
                    copier = FileCopier(
                        audit,
                        pool,
                        child,
                        table_node,
                        progress,
                        self.settings.subbatch_rows,
                        self.progress,
                    )
                    copier.copy_files(
                        (
                            self._opening_and_batches(spec, release, file_steps)
                            for _, file_steps in groupby(steps, key=lambda s: s.file.zip_name)
                        ),
                        resumes,
                    )
                self.stop.check(f"{spec.name} {release}")
                self._doing = "building its key and indexes"
                duplicates, index_seconds = self._indexes(audit, data, child, table_node, keep)
                target = tables.swap_in(data, child, self.settings.lock_policy(), self.progress)
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

    def _indexes(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        child: tables.LoadingChild,
        table_node: AuditNode,
        resumed: int | None,
    ) -> tuple[int, float]:
        """Build the key and indexes, unless the resumed load built them before its swap
        failed: then it only swaps in. Returns repeated key values and build seconds."""
        spec = child.spec
        if resumed is not None and tables.has_indexes(data, child):
            self.progress(
                f"{spec.name}: key and indexes built by table_load {resumed}; swapping in"
            )
            return audit.carry_key_counts(table_node, resumed), 0.0
        self.progress(f"{spec.name}: building key and indexes on {table_node.rows:,} rows")
        started = time.perf_counter()
        duplicates = tables.build_indexes(data, child)
        seconds = time.perf_counter() - started
        if spec.key:
            audit.record_check_counts(
                table_node.id, None, [duplicates.audit_row(spec.key, table_node.rows)]
            )
        return duplicates.values, seconds

    def _opening_and_batches(
        self, spec: TableSpec, release: str, file_steps: Iterator[ReadStep]
    ) -> tuple[ReadStep, Iterator[Batch]]:
        """A file's opening step and the lazy stream of its batches, each after a stop check.

        The file in hand is remembered, so a lost server or a stop names it.
        """
        opened = next(file_steps)
        self._doing = opened.file.zip_name

        def batches() -> Iterator[Batch]:
            for step in file_steps:
                self.stop.check(f"{spec.name} {release} ({opened.file.zip_name})")
                if step.batch is not None:
                    yield step.batch

        return opened, batches()


def _extracted(
    files: tuple[ReleaseFile, ...], scratch: Path, skip: set[str]
) -> Iterator[tuple[ReleaseFile, ExtractedMember | Exception | None]]:
    """Each file with its extracted member (None if skipped), or the error that names it.

    Run through `Prefetched`, the next zip inflates while the current one is COPYed;
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


class _StartedRead(NamedTuple):
    """A file with its read, whose batches are already being read in their own thread."""

    file: ReleaseFile
    member: ExtractedMember | Exception | None
    read: FileRead | None
    batches: Prefetched[Batch] | None

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()


def _start_read(
    spec: TableSpec,
    file: ReleaseFile,
    member: ExtractedMember | Exception | None,
    settings: ReaderSettings,
    counted: TallyPlan | None,
) -> _StartedRead:
    if not isinstance(member, ExtractedMember):
        return _StartedRead(file, member, None, None)
    read = read_member(spec, member, settings, counted.new_file() if counted else None)
    return _StartedRead(file, member, read, Prefetched(read.batches()))


def _read_steps(
    spec: TableSpec,
    extracted: Iterator[tuple[ReleaseFile, ExtractedMember | Exception | None]],
    settings: ReaderSettings,
    counted: TallyPlan | None = None,
) -> Iterator[ReadStep]:
    """Every file's opening step, then its batches, as one stream across the files.

    Each file is read by DuckDB in a thread of its own, and the next file's read starts
    as soon as the current file has handed out its first batch, so the next file's
    first batch is ready when the current file's last one is COPYed: DuckDB's start on
    each file (connecting, binding, parsing a first batch) otherwise leaves both COPY
    streams idle at every file boundary. A file's read result is complete before the
    next file's opening step is yielded.
    """
    starts = (_start_read(spec, file, member, settings, counted) for file, member in extracted)
    current = next(starts, None)
    following: _StartedRead | None = None
    try:
        while current is not None:
            yield ReadStep(current.file, current.member, current.read)
            for batch in current.batches or ():
                yield ReadStep(current.file, current.member, current.read, batch)
                if following is None:
                    following = next(starts, None)
            current.close()
            current = following if following is not None else next(starts, None)
            following = None
    finally:
        for started in (current, following):
            if started is not None:
                started.close()


def _cancel_quietly(connection: psycopg.Connection) -> None:
    """Cancel the connection's running statement, if any; a closed one has nothing to cancel."""
    with suppress(psycopg.Error):
        connection.cancel_safe(timeout=5)


def _smallest_first(files: tuple[ReleaseFile, ...]) -> tuple[ReleaseFile, ...]:
    """The files in the order that starts COPY soonest: smallest zip first.

    Nothing is COPYed until the first zip is inflated and counted; a real release's
    Estabelecimentos0 is four times its siblings (1.3 GB zipped), so starting there
    kept PostgreSQL idle for seconds. Later zips inflate while earlier ones load.
    """
    return tuple(sorted(files, key=lambda file: (file.path.stat().st_size, file.zip_name)))
