"""Resume a table load that died or failed, from its committed sub-batches.

Every sub-batch is one COPY in its own transaction, into a child table that only its
load uses; the audit row turns COMPLETED after the COPY commits. So after a crash the
child holds exactly the rows of the COMPLETED sub-batches, plus at most the rows of a
few sub-batches whose COPY committed just before the process died (their audit rows
still say RUNNING): those are deleted, everything else is kept. A file whose load
COMPLETED is not read again; a file loaded in part is read again but only the row
ranges no committed sub-batch covers are copied. Nothing is resumed from a zip whose
sha256 changed since: then the table loads from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cnpj_assets.landing import ReleaseFile
from cnpj_assets.postgres import tables
from cnpj_assets.reader.member import sha256_of
from cnpj_assets.specs import TableSpec

_CANDIDATE = """
SELECT id FROM cnpj_audit.table_load
WHERE table_name = %(table)s AND release = %(release)s AND status IN ('FAILED', 'ABANDONED')
  AND id > coalesce((SELECT max(id) FROM cnpj_audit.table_load
                     WHERE table_name = %(table)s AND release = %(release)s
                       AND status = 'COMPLETED'), 0)
ORDER BY id DESC
"""

_CHAIN = """
WITH RECURSIVE chain(id) AS (
    SELECT %(id)s::bigint
    UNION
    SELECT t.resumed_from FROM cnpj_audit.table_load t JOIN chain c ON t.id = c.id
    WHERE t.resumed_from IS NOT NULL
)
SELECT id FROM chain
"""

_COVERED = """
SELECT f.zip_name, f.sha256, s.id, s.status, s.first_row, s.last_row
FROM cnpj_audit.subbatch_load s
JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
WHERE f.table_load_id = ANY(%(chain)s)
ORDER BY s.first_row
"""

_COMPLETED_FILES = """
SELECT DISTINCT ON (zip_name) id, zip_name, sha256, member_name, zip_bytes, member_bytes, lines,
       blank_lines, continuation_lines, invalid_values, rows, rejects
FROM cnpj_audit.file_load
WHERE table_load_id = ANY(%(chain)s) AND status = 'COMPLETED'
ORDER BY zip_name, id DESC
"""

CARRIED_FILE_FIELDS = (
    "member_name",
    "sha256",
    "zip_bytes",
    "member_bytes",
    "lines",
    "blank_lines",
    "continuation_lines",
    "invalid_values",
)


@dataclass
class FileResume:
    """What a dead load already did for one zip."""

    sha256: str | None
    completed: dict[str, Any] | None = None  # the COMPLETED file_load row, if any
    covered: list[tuple[int, int]] = field(default_factory=list)  # committed row ranges

    @property
    def carried_rows(self) -> int:
        if self.completed is not None:
            return int(self.completed["rows"])
        return sum(last - first + 1 for first, last in self.covered)


@dataclass
class ResumePlan:
    """The dead load to continue and, per zip name, what it left."""

    table_load_id: int
    child: tables.LoadingChild
    files: dict[str, FileResume]
    unfinished_subbatches: list[int]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def uncovered(first: int, last: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of rows first..last that no committed range covers, in order."""
    parts: list[tuple[int, int]] = []
    start = first
    for low, high in covered:
        if high < start or low > last:
            continue
        if low > start:
            parts.append((start, low - 1))
        start = max(start, high + 1)
    if start <= last:
        parts.append((start, last))
    return parts


def load_chain(connection: psycopg.Connection, table_load_id: int) -> list[int]:
    """This load and the loads it resumed, whose committed rows it kept."""
    return [row[0] for row in connection.execute(_CHAIN, {"id": table_load_id})]


def existing_children(connection: psycopg.Connection, spec: TableSpec, release: str) -> list[int]:
    """Table load ids of the unattached `<table>_<release>_load<id>` tables left behind."""
    prefix = f"{tables.child_name(spec, release)}_load"
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
        (tables.SCHEMA, prefix),
    ).fetchall()
    return [
        int(name.removeprefix(prefix)) for (name,) in rows if name.removeprefix(prefix).isdigit()
    ]


def plan_resume(
    audit: psycopg.Connection,
    data: psycopg.Connection,
    spec: TableSpec,
    release: str,
    files: tuple[ReleaseFile, ...],
) -> tuple[ResumePlan | None, str]:
    """The plan to continue the latest unfinished load, or None and the reason why not."""
    left = set(existing_children(data, spec, release))
    candidates = [
        row[0] for row in audit.execute(_CANDIDATE, {"table": spec.name, "release": release})
    ]
    candidate = next((c for c in candidates if c in left), None)
    if candidate is None:
        return None, "no unfinished load to resume"
    plan = ResumePlan(candidate, tables.loading_child(spec, release, candidate), {}, [])
    chain = load_chain(audit, candidate)
    with audit.cursor(row_factory=dict_row) as cursor:
        for row in cursor.execute(_COVERED, {"chain": chain}):
            resume = plan.files.setdefault(row["zip_name"], FileResume(row["sha256"]))
            if row["status"] == "COMPLETED":
                resume.covered.append((row["first_row"], row["last_row"]))
            else:
                plan.unfinished_subbatches.append(row["id"])
        for row in cursor.execute(_COMPLETED_FILES, {"chain": chain}):
            plan.files.setdefault(row["zip_name"], FileResume(row["sha256"])).completed = row
    for resume in plan.files.values():
        resume.covered = _merge(resume.covered)
    by_name = {f.zip_name: f.path for f in files}
    for zip_name, resume in plan.files.items():
        path: Path | None = by_name.get(zip_name)
        if path is None or (resume.sha256 and sha256_of(path) != resume.sha256):
            return None, f"{zip_name} changed since table_load {candidate}"
    return plan, f"resuming table_load {candidate}"


def adopt_child(
    data: psycopg.Connection, plan: ResumePlan, table_load_id: int
) -> tables.LoadingChild:
    """Rename the dead load's child for this load and drop rows no audit row vouches for."""
    child = tables.loading_child(plan.child.spec, plan.child.release, table_load_id)
    data.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            plan.child.identifier, sql.Identifier(child.name)
        )
    )
    if plan.unfinished_subbatches:
        data.execute(
            sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                child.identifier, sql.Identifier(tables.LINEAGE_COLUMN)
            ),
            (plan.unfinished_subbatches,),
        )
    return child


def drop_leftovers(
    data: psycopg.Connection, spec: TableSpec, release: str, keep: int | None
) -> list[int]:
    """Drop every unattached child of this table and release but the one being resumed."""
    dropped = [i for i in existing_children(data, spec, release) if i != keep]
    for table_load_id in dropped:
        tables.drop_child(data, tables.loading_child(spec, release, table_load_id))
    return dropped
