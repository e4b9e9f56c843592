"""Exclusive locks that never make readers queue for more than a moment.

A swap (or a publication) needs an ACCESS EXCLUSIVE lock on a table its readers use.
Asked for plainly, the request waits behind a running query and every later query of
the table waits behind the request, for as long as the running query lasts. Here each
attempt waits at most `timeout_ms` for its locks
(`lock_timeout`), then gives up and lets the readers through, and tries again with a
growing pause until `deadline_seconds`; past it, the error names who holds the table.

An autovacuum of the old table is cancelled by PostgreSQL only once a lock request has
waited `deadlock_timeout`; when autovacuum is all that blocks, the next attempt waits
that long plus the timeout, so the vacuum gives way instead of the swap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")
MAX_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class LockPolicy:
    """How long one attempt may queue readers, and how long to keep trying."""

    timeout_ms: int = 200
    deadline_seconds: float = 600.0


class LockDeadlineError(RuntimeError):
    """The locks could not be had before the deadline; the message names the holders."""


_HOLDERS = """
SELECT DISTINCT a.pid, coalesce(a.usename, a.backend_type), a.backend_type,
       extract(epoch FROM clock_timestamp() - coalesce(a.query_start, a.backend_start)),
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.relation = ANY(%s::regclass[]) AND a.pid <> pg_backend_pid()
ORDER BY 1
"""


def lock_holders(
    connection: psycopg.Connection, relations: Sequence[str]
) -> list[tuple[int, str, str, float, str]]:
    """(pid, user, backend type, seconds its query has run, its first characters)."""
    return connection.execute(_HOLDERS, (list(relations),)).fetchall()


def describe_holders(holders: list[tuple[int, str, str, float, str]]) -> str:
    return "; ".join(
        f"pid {pid} ({user}, {kind}) running {seconds:.0f} s: {query!r}"
        for pid, user, kind, seconds, query in holders
    )


def _deadlock_timeout_ms(connection: psycopg.Connection) -> int:
    row = connection.execute(
        "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'"
    ).fetchone()
    return int(row[0]) if row else 1000


def with_brief_locks(
    connection: psycopg.Connection,
    policy: LockPolicy,
    what: str,
    relations: Callable[[], Sequence[str]],
    work: Callable[[], T],
    say: Callable[[str], None] = lambda _: None,
) -> T:
    """Run `work` in a transaction whose lock waits are each cut at the policy's timeout.

    `relations` names the tables whose holders the error (and the progress) reports.
    The connection must be in autocommit mode: each attempt is its own transaction.
    """
    deadline = time.monotonic() + policy.deadline_seconds
    pause = policy.timeout_ms / 1000
    timeout_ms = policy.timeout_ms
    attempts = 0
    while True:
        attempts += 1
        try:
            with connection.transaction():
                connection.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms"))
                )
                return work()
        except psycopg.errors.LockNotAvailable:
            holders = lock_holders(connection, relations())
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockDeadlineError(
                f"{what}: could not lock its tables in {policy.deadline_seconds:.0f} s "
                f"({attempts} attempts of {policy.timeout_ms} ms each, readers let through "
                f"between them); held by {describe_holders(holders) or 'a transaction that ended'}"
            )
        vacuum_only = bool(holders) and all(h[2] == "autovacuum worker" for h in holders)
        timeout_ms = policy.timeout_ms + (_deadlock_timeout_ms(connection) if vacuum_only else 0)
        if attempts == 1 or attempts % 10 == 0:
            say(f"{what}: waiting for {describe_holders(holders) or 'a lock'}; readers go first")
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE_SECONDS)
