"""Questions the rest of the project asks of the audit: which load of a table is current."""

from __future__ import annotations

from datetime import datetime
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
WHERE table_name = %s AND release = %s AND status = 'COMPLETED' AND dropped_at IS NULL
ORDER BY id DESC LIMIT 1
"""


def latest_completed_load(
    connection: psycopg.Connection, table: str, release: str
) -> CompletedLoad | None:
    """The load whose rows are attached for this table and release, if any completed (and
    retention has not dropped its release since)."""
    row = connection.execute(_LATEST, (table, release)).fetchone()
    return CompletedLoad(*row) if row else None


_LATEST_PUBLICATION = """
SELECT release, published_at FROM cnpj_audit.publication WHERE outcome = 'published'
ORDER BY id DESC LIMIT 1
"""


def latest_publication(connection: psycopg.Connection) -> tuple[str, datetime] | None:
    """The release cnpj_current shows and when it was published there, if any was."""
    row = connection.execute(_LATEST_PUBLICATION).fetchone()
    return (row[0], row[1]) if row else None


def published_release(connection: psycopg.Connection) -> str | None:
    """The release cnpj_current shows: the last one published."""
    latest = latest_publication(connection)
    return latest[0] if latest else None


_PUBLISHED_BEFORE = """
SELECT max(release) FROM cnpj_audit.publication WHERE outcome = 'published' AND release < %s
"""


def published_before(connection: psycopg.Connection, release: str) -> str | None:
    """The newest release published that is older than this one: what it is compared with."""
    row = connection.execute(_PUBLISHED_BEFORE, (release,)).fetchone()
    return row[0] if row else None


_ROWS_LOADED = """
SELECT rows FROM cnpj_audit.table_load
WHERE table_name = %s AND release = %s AND status = 'COMPLETED' ORDER BY id DESC LIMIT 1
"""


def rows_loaded(connection: psycopg.Connection, table: str, release: str) -> int | None:
    """Rows of the table's last completed load of a release, dropped since or not."""
    row = connection.execute(_ROWS_LOADED, (table, release)).fetchone()
    return int(row[0]) if row else None
