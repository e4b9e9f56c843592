"""Load one table of one release: the audit contexts around reader and writer.

This is the whole data path, free of Dagster so it can be tested and benchmarked on
its own; the assets call it and turn its summary into metadata.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from cnpj_assets.audit import AuditNode, AuditService, audit_tree
from cnpj_assets.landing import Release, ReleaseFile
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.writer import copy_rows
from cnpj_assets.reader import FileRead, ReaderSettings, extract_member, read_member
from cnpj_assets.specs import TableSpec

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class LoadSettings:
    """Sizes and places of a load; every field is a Dagster resource setting too."""

    scratch_dir: Path
    batch_rows: int = 1_000_000
    subbatch_rows: int = 100_000
    encoding: str = "latin-1"
    duckdb_threads: int = 2
    duckdb_memory_limit: str = "1GB"

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(
            batch_rows=self.batch_rows,
            encoding=self.encoding,
            duckdb_threads=self.duckdb_threads,
            duckdb_memory_limit=self.duckdb_memory_limit,
        )


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
        run = run or RunInfo()
        files = release.files_for(spec.name)
        audit = AuditService(self.database_url)
        try:
            with psycopg.connect(self.database_url, autocommit=True) as data:
                return self._load(audit, data, spec, release, files, run)
        finally:
            audit.close()

    def _load(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        spec: TableSpec,
        release: Release,
        files: tuple[ReleaseFile, ...],
        run: RunInfo,
    ) -> TableLoadSummary:
        dagster = {
            "asset_key": run.asset_key,
            "partition_key": run.partition_key,
            "dagster_run_id": run.dagster_run_id,
        }
        with audit.table_context(spec.name, release.name, **dagster) as table_node:
            child = tables.create_loading_child(data, spec, release.name, table_node.id)
            try:
                for file in files:
                    self._load_file(audit, data, spec, child, table_node, file)
                self.progress(f"{spec.name}: building key and indexes on {table_node.rows:,} rows")
                duplicates = tables.build_indexes(data, child)
                target = tables.swap_in(data, child)
            except BaseException:
                tables.drop_child(data, child)
                raise
            table_node.extra.update({"target_table": target, "duplicate_keys": duplicates})
        return TableLoadSummary(table_node.id, target, audit_tree(audit.connection, table_node.id))

    def _load_file(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        spec: TableSpec,
        child: tables.LoadingChild,
        table_node: AuditNode,
        file: ReleaseFile,
    ) -> None:
        scratch = self.settings.scratch_dir / f"load{table_node.id}"
        with audit.file_context(table_node, file.zip_name) as file_node:
            try:
                member = extract_member(file.path, scratch)
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
                read = read_member(spec, member, self.settings.reader_settings())
                self._copy_batches(audit, data, child, file_node, read)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _copy_batches(
        self,
        audit: AuditService,
        data: psycopg.Connection,
        child: tables.LoadingChild,
        file_node: AuditNode,
        read: FileRead,
    ) -> None:
        started = time.perf_counter()
        lines_total = max(read.member.stats.physical_lines, 1)
        batch_spans, subbatch_spans = [], []
        for batch in read.batches():
            span = batch.span
            with audit.batch_context(file_node, batch.index, span.first_row, span.last_row) as node:
                batch_spans.append((node.id, span))
                for sub in batch.subbatches(self.settings.subbatch_rows):
                    first, last = sub.span.first_row, sub.span.last_row
                    with audit.subbatch_context(node, sub.index, first, last) as sub_node:
                        subbatch_spans.append((sub_node.id, sub.span))
                        sub_node.bytes = copy_rows(data, child, sub.data, sub_node.id)
                        sub_node.rows = sub.data.num_rows
            done = file_node.rows
            rate = done / max(time.perf_counter() - started, 1e-9)
            self.progress(
                f"{child.spec.name} {read.member.zip_path.name}: {done:,} rows "
                f"({min(done / lines_total, 1):.0%} of the file) at {rate:,.0f} rows/s"
            )
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
