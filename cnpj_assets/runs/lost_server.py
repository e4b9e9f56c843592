"""A server lost during a CLI load, said in a few lines instead of pages.

Dagster keeps the run's events in PostgreSQL. With the server gone it retries every
write, logging each retry on the root logger (a dozen lines a write), and when it
gives up the run ends in a chain of tracebacks through SQLAlchemy, psycopg2 and
dagster-postgres. The CLI collapses the retries into one line a while and turns the
final error into one ServerLost line; the loads say which file they were in.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg2
import sqlalchemy.exc
from dagster_postgres.utils import DagsterPostgresException

from cnpj_assets.one_line_error import OneLineError

LOST = (
    psycopg.OperationalError,
    psycopg2.OperationalError,
    sqlalchemy.exc.OperationalError,
    DagsterPostgresException,
)
RETRY_NOTICE_SECONDS = 30.0
_DAGSTER_RETRY = "Retrying failed database connection"


class ServerLost(OneLineError, RuntimeError):
    """PostgreSQL went away mid-run; the message says what the next run does about it."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def lost_server(error: BaseException) -> bool:
    """True when the error, or one it came from, is a lost or refused connection."""
    return any(isinstance(link, LOST) for link in _chain(error))


def reason_of(error: BaseException) -> str:
    """In one line: what the server or libpq said (the deepest connection error), or the error."""
    lost = [link for link in _chain(error) if isinstance(link, LOST)]
    if not lost:
        text = str(error).strip()
        return type(error).__name__ + (f": {text.splitlines()[0]}" if text else "")
    text = str(getattr(lost[-1], "orig", None) or lost[-1]).strip()
    return text.splitlines()[0] if text else type(lost[-1]).__name__


class _StorageRetries(logging.Filter):
    """Notes when Dagster last retried its storage; collapsing, says so in a line a while."""

    def __init__(self) -> None:
        super().__init__()
        self.last_seen = float("-inf")  # time.monotonic() of the last retry
        self.collapse = False
        self._next_notice = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_DAGSTER_RETRY):
            return True
        self.last_seen = time.monotonic()
        if not self.collapse:
            return True
        if self.last_seen >= self._next_notice:
            self._next_notice = self.last_seen + RETRY_NOTICE_SECONDS
            cause = record.args[0] if isinstance(record.args, tuple) and record.args else ""
            reason = reason_of(cause) if isinstance(cause, BaseException) else str(cause)
            print(f"Dagster cannot reach PostgreSQL and retries: {reason}", file=sys.stderr)
        return False


_retries = _StorageRetries()


def watch_storage_retries() -> None:
    """Note Dagster's storage retries in this process (dagster-postgres logs them on root)."""
    root = logging.getLogger()
    if _retries not in root.filters:
        root.addFilter(_retries)


def storage_retried_within(seconds: float) -> bool:
    """True if Dagster retried its storage connection in the last `seconds`."""
    return time.monotonic() - _retries.last_seen < seconds


@contextmanager
def collapsed_storage_retries() -> Iterator[None]:
    """While inside, Dagster's storage retries print one line per 30 s, not a dozen a write."""
    watch_storage_retries()
    _retries.collapse = True
    try:
        yield
    finally:
        _retries.collapse = False
