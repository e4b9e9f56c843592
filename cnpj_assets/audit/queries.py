"""Questions the rest of the project asks of the audit: which load of a table is current."""

from __future__ import annotations

from typing import NamedTuple

import psycopg


class CompletedLoad(NamedTuple):
    """A release's last completed load of a table: the one whose rows are attached."""

    id: int
    rows: int
    duplicate_keys: int
    dagster_run_id: str | None


_LATEST = """
SELECT id, rows, coalesce(duplicate_keys, 0), dagster_run_id FROM cnpj_audit.table_load
WHERE table_name = %s AND release = %s AND status = 'COMPLETED' ORDER BY id DESC LIMIT 1
"""


def latest_completed_load(
    connection: psycopg.Connection, table: str, release: str
) -> CompletedLoad | None:
    """The load whose rows are attached for this table and release, if any completed."""
    row = connection.execute(_LATEST, (table, release)).fetchone()
    return CompletedLoad(*row) if row else None
