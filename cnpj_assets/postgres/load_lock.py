"""One load at a time per table and release: a PostgreSQL advisory lock.

The lock lives in the data connection's session, so PostgreSQL releases it by itself
when the process holding it dies; a lock that is free while audit rows still say
RUNNING therefore proves those rows belong to a dead run.
"""

from __future__ import annotations

import psycopg

LOCK_NAMESPACE = "cnpj_assets.load"


class LoadLockedError(RuntimeError):
    """Another live run is loading the same table and release."""


def try_lock(connection: psycopg.Connection, table: str, release: str) -> bool:
    row = connection.execute(
        "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
        (LOCK_NAMESPACE, f"{table}/{release}"),
    ).fetchone()
    return bool(row and row[0])


def unlock(connection: psycopg.Connection, table: str, release: str) -> None:
    """Release the lock; a dead session has released it already."""
    if connection.closed or connection.broken:
        return
    connection.execute(
        "SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))",
        (LOCK_NAMESPACE, f"{table}/{release}"),
    )
