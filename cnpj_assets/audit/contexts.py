"""The cascaded audit contexts: table -> file -> batch -> sub-batch.

Each context writes its row RUNNING when it opens and COMPLETED or FAILED (with the
error) when it closes, adds its rows, bytes and rejects to its parent's, and never
swallows an exception. The audit connection is separate from the data connection and
autocommits, so a failed load still leaves its FAILED rows behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cnpj_assets.audit.schema import ensure_audit_schema

RUNNING, COMPLETED, FAILED, ABANDONED = "RUNNING", "COMPLETED", "FAILED", "ABANDONED"

_ABANDON = """
WITH tables AS (
    UPDATE cnpj_audit.table_load SET status = 'ABANDONED', finished_at = clock_timestamp(),
           error = %(reason)s
    WHERE table_name = %(table)s AND release = %(release)s AND status = 'RUNNING'
    RETURNING id
), files AS (
    UPDATE cnpj_audit.file_load SET status = 'ABANDONED', finished_at = clock_timestamp()
    WHERE table_load_id IN (SELECT id FROM tables) AND status = 'RUNNING' RETURNING id
), batches AS (
    UPDATE cnpj_audit.batch_load b SET status = 'ABANDONED', finished_at = clock_timestamp()
    FROM cnpj_audit.file_load f, tables t
    WHERE b.file_load_id = f.id AND f.table_load_id = t.id AND b.status = 'RUNNING'
    RETURNING b.id
), subbatches AS (
    UPDATE cnpj_audit.subbatch_load s SET status = 'ABANDONED', finished_at = clock_timestamp()
    FROM cnpj_audit.batch_load b, cnpj_audit.file_load f, tables t
    WHERE s.batch_load_id = b.id AND b.file_load_id = f.id AND f.table_load_id = t.id
      AND s.status = 'RUNNING'
    RETURNING s.id
)
SELECT id FROM tables
"""


class CheckCountRow(NamedTuple):
    """One row of cnpj_audit.check_count, without its ids."""

    check_name: str
    column_name: str
    checked: int
    failed: int
    failed_values: int | None
    sample: list[dict[str, Any]]  # {"value", "rows", "line"} by value
    sample_complete: bool


@dataclass
class AuditNode:
    """One open context: its audit row id, its counters and its parent."""

    table: str
    id: int
    parent: AuditNode | None
    rows: int = 0
    bytes: int = 0
    rejects: int = 0
    started: float = field(default_factory=time.perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class AuditService:
    """Writes the audit hierarchy on its own autocommit connection."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)
        self._rollup = threading.Lock()  # sub-batches close in several COPY threads
        ensure_audit_schema(self.connection)

    def close(self) -> None:
        self.connection.close()

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in values)
        placeholders = sql.SQL(", ").join(sql.Placeholder() * len(values))
        statement = sql.SQL(
            "INSERT INTO cnpj_audit.{} ({}, status) VALUES ({}, %s) RETURNING id"
        ).format(sql.Identifier(table), columns, placeholders)
        row = self.connection.execute(statement, [*values.values(), RUNNING]).fetchone()
        assert row is not None
        return int(row[0])

    def update(self, node: AuditNode, values: dict[str, Any]) -> None:
        assignments = sql.SQL(", ").join(
            [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values]
            + ([sql.SQL("finished_at = clock_timestamp()")] if "status" in values else [])
        )
        statement = sql.SQL("UPDATE cnpj_audit.{} SET {} WHERE id = %s").format(
            sql.Identifier(node.table), assignments
        )
        self.connection.execute(statement, [*values.values(), node.id])

    @contextmanager
    def _context(
        self, table: str, parent: AuditNode | None, values: dict[str, Any]
    ) -> Iterator[AuditNode]:
        node = AuditNode(table, self._insert(table, values), parent)
        try:
            yield node
        except BaseException as error:
            # With the server gone the row cannot say FAILED; it stays RUNNING, and the
            # next load, holding the table's lock, marks it ABANDONED. The error that
            # ended the context is the one raised, not the audit's lost connection.
            with suppress(psycopg.OperationalError):
                self._close(node, FAILED, _error_text(error))
            raise
        self._close(node, COMPLETED, None)

    def _close(self, node: AuditNode, status: str, error: str | None) -> None:
        values = {
            "status": status,
            "rows": node.rows,
            "bytes": node.bytes,
            "rejects": node.rejects,
            "seconds": node.seconds,
            "error": error,
            **node.extra,
        }
        self.update(node, values)
        parent = node.parent
        if parent is not None:
            with self._rollup:
                parent.rows += node.rows
                parent.bytes += node.bytes
                parent.rejects += node.rejects

    def abandon_dead_loads(self, table_name: str, release: str, found_by: str) -> list[int]:
        """Mark loads of this table and release still RUNNING as ABANDONED; return their ids.

        Call it only while holding the table's load lock: then no live process owns
        them, their run died (kill -9, lost machine) before it could close its rows.
        """
        reason = f"abandoned: its process died before finishing; found by {found_by}"
        rows = self.connection.execute(
            _ABANDON, {"table": table_name, "release": release, "reason": reason}
        ).fetchall()
        return [int(row[0]) for row in rows]

    def running_loads(self, table_name: str, release: str) -> list[tuple[int, str | None, Any]]:
        """(id, Dagster run id, start) of the loads of this table and release still RUNNING."""
        return self.connection.execute(
            "SELECT id, dagster_run_id, started_at FROM cnpj_audit.table_load "
            "WHERE table_name = %s AND release = %s AND status = 'RUNNING' ORDER BY id",
            (table_name, release),
        ).fetchall()

    def table_context(self, table_name: str, release: str, **values: Any) -> Any:
        """One per asset partition; `values`: asset_key, partition_key, dagster_run_id, ..."""
        return self._context(
            "table_load", None, {"table_name": table_name, "release": release, **values}
        )

    def file_context(self, parent: AuditNode, zip_name: str) -> Any:
        return self._context(
            "file_load", parent, {"table_load_id": parent.id, "zip_name": zip_name}
        )

    def batch_context(self, parent: AuditNode, index: int, first_row: int, last_row: int) -> Any:
        values = {
            "file_load_id": parent.id,
            "batch_index": index,
            "first_row": first_row,
            "last_row": last_row,
        }
        return self._context("batch_load", parent, values)

    def subbatch_context(self, parent: AuditNode, index: int, first_row: int, last_row: int) -> Any:
        values = {
            "batch_load_id": parent.id,
            "subbatch_index": index,
            "first_row": first_row,
            "last_row": last_row,
        }
        return self._context("subbatch_load", parent, values)

    def set_line_ranges(self, table: str, ranges: list[tuple[int, int, int]]) -> None:
        """Store (first_line, last_line, id) once the file's rejects are known."""
        statement = sql.SQL(
            "UPDATE cnpj_audit.{} SET first_line = %s, last_line = %s WHERE id = %s"
        ).format(sql.Identifier(table))
        with self.connection.cursor() as cursor:
            cursor.executemany(statement, ranges)

    def record_rejects(
        self, file_node: AuditNode, rejects: list[tuple[int, int, str, str]]
    ) -> None:
        """Quarantine rejected records: (line, record, raw, reason), raw text kept whole."""
        if not rejects:  # most files: no COPY round trip on the shared audit connection
            return
        with (
            self.connection.cursor() as cursor,
            cursor.copy(
                "COPY cnpj_audit.rejected_row (file_load_id, line, record, raw, reason) FROM STDIN"
            ) as copy,
        ):
            for line, record, raw, reason in rejects:
                copy.write_row((file_node.id, line, record, raw.replace("\x00", ""), reason))
        file_node.rejects += len(rejects)

    def record_check_counts(
        self, table_load_id: int, file_load_id: int | None, counts: list[CheckCountRow]
    ) -> None:
        """Keep what a quality check counted for one file (or, with no file, the table)."""
        with self.connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO cnpj_audit.check_count (table_load_id, file_load_id, check_name, "
                "column_name, checked, failed, failed_values, sample, sample_complete) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (table_load_id, file_load_id, *row[:5], Jsonb(row.sample), row.sample_complete)
                    for row in counts
                ],
            )

    def carry_key_counts(self, table_node: AuditNode, from_table_load_id: int) -> int:
        """A resumed load whose key was built by the load it resumes keeps that build's
        counts; returns its number of repeated key values."""
        self.connection.execute(
            "INSERT INTO cnpj_audit.check_count (table_load_id, file_load_id, check_name, "
            "column_name, checked, failed, failed_values, sample, sample_complete) "
            "SELECT %s, NULL, check_name, column_name, checked, failed, failed_values, sample, "
            "sample_complete FROM cnpj_audit.check_count "
            "WHERE table_load_id = %s AND file_load_id IS NULL",
            (table_node.id, from_table_load_id),
        )
        row = self.connection.execute(
            "SELECT coalesce(duplicate_keys, 0) FROM cnpj_audit.table_load WHERE id = %s",
            (from_table_load_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    def carry_check_counts(self, file_node: AuditNode, from_file_load_id: int) -> None:
        """A file a resumed load skips keeps the counts the dead load took of it."""
        assert file_node.parent is not None, "a file context always has its table's"
        self.connection.execute(
            "INSERT INTO cnpj_audit.check_count (table_load_id, file_load_id, check_name, "
            "column_name, checked, failed, failed_values, sample, sample_complete) "
            "SELECT %s, %s, check_name, column_name, checked, failed, failed_values, sample, "
            "sample_complete FROM cnpj_audit.check_count WHERE file_load_id = %s",
            (file_node.parent.id, file_node.id, from_file_load_id),
        )
