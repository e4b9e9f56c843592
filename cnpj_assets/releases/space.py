"""Room for a load, checked before its first COPY.

A table needs about its CSV bytes times what PostgreSQL makes of them (rows, key,
indexes): measured on each table's last completed load, else a default measured on the
synthetic release (1.1-1.9 bytes per CSV byte for the four big tables; 2.5 leaves
room for the WAL and a table that indexes worse). The CSV bytes are read from the zips'
directories, without inflating anything. Free space is the disk under the server's data
directory when it is on this machine (the embedded server), or a budget the user sets
for a server elsewhere (`disk_budget_gb`), less what the database already takes.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cnpj_assets.landing import ReleaseFile
from cnpj_assets.specs import TableSpec

DEFAULT_BYTES_PER_CSV_BYTE = 2.5
GIB = 2**30

_MEASURED = """
SELECT pg_total_relation_size(to_regclass(t.target_table))::float / nullif(sum(f.member_bytes), 0)
FROM cnpj_audit.table_load t JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
WHERE t.id = (SELECT max(id) FROM cnpj_audit.table_load WHERE table_name = %s
              AND status = 'COMPLETED' AND dropped_at IS NULL)
GROUP BY t.target_table
"""


class InsufficientSpaceError(RuntimeError):
    """The load would not fit; the message says how much it needs and has."""


@dataclass(frozen=True)
class SpaceEstimate:
    needed: int
    csv_bytes: int
    factor: float
    measured: bool


def csv_bytes(files: tuple[ReleaseFile, ...]) -> int:
    """The members' sizes as the zips' directories state them (a zip that cannot be read
    counts its own size: its load fails on it anyway, naming it)."""
    total = 0
    for file in files:
        try:
            with zipfile.ZipFile(file.path) as archive:
                total += sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError):
            total += file.size
    return total


def estimate(
    connection: psycopg.Connection, spec: TableSpec, files: tuple[ReleaseFile, ...]
) -> SpaceEstimate:
    row = connection.execute(_MEASURED, (spec.name,)).fetchone()
    measured = row is not None and row[0] is not None
    factor = float(row[0]) if measured and row else DEFAULT_BYTES_PER_CSV_BYTE
    size = csv_bytes(files)
    return SpaceEstimate(int(size * factor), size, factor, measured)


# a plain role may not read data_directory: asked anyway, the server logs an ERROR
_DATA_DIRECTORY_IF_ALLOWED = """
    SELECT CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                  OR pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER')
           THEN current_setting('data_directory') END"""


def free_bytes(connection: psycopg.Connection, budget_gb: float | None) -> tuple[int, str] | None:
    """Free bytes for the database and where they were measured; None if unknowable.

    The disk under the data directory when the server runs on this machine, a budget
    less what the database takes when one is set; the smaller of the two when both.
    """
    limits = []
    row = connection.execute(_DATA_DIRECTORY_IF_ALLOWED).fetchone()
    if row is not None and row[0] is not None and Path(row[0]).is_dir():
        limits.append((shutil.disk_usage(row[0]).free, f"the disk of {row[0]}"))
    if budget_gb is not None:
        used_row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        used = int(used_row[0]) if used_row else 0
        limits.append(
            (
                int(budget_gb * GIB) - used,
                f"the budget of {budget_gb:g} GiB ({used / GIB:.2f} used)",
            )
        )
    return min(limits) if limits else None


def check_space(
    connection: psycopg.Connection,
    spec: TableSpec,
    release: str,
    files: tuple[ReleaseFile, ...],
    budget_gb: float | None,
) -> SpaceEstimate:
    """Refuse a load that would not fit, before anything is written."""
    needed = estimate(connection, spec, files)
    free = free_bytes(connection, budget_gb)
    if free is not None and needed.needed > free[0]:
        how = "as its last load measured" if needed.measured else "a default"
        raise InsufficientSpaceError(
            f"{spec.name} {release} needs about {needed.needed / GIB:.1f} GiB in PostgreSQL "
            f"({len(files)} zips, {needed.csv_bytes / GIB:.1f} GiB of CSV x {needed.factor:.2f}, "
            f"{how}) and {free[1]} leaves {max(free[0], 0) / GIB:.1f} GiB; free some space or "
            "lower keep_releases"
        )
    return needed
