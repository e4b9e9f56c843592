"""Several COPY streams at once: worker threads, each with its own connection.

One COPY stream keeps one PostgreSQL backend (one core) busy, so two streams keep a
2-core machine's PostgreSQL side busy. The CSV formatting of a
sub-batch happens in the worker too (Arrow releases the GIL), so it overlaps with the
DuckDB read of the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import psycopg

T = TypeVar("T")


class CopyPool:
    """`streams` threads, each holding one autocommit connection to the database."""

    def __init__(self, url: str, streams: int) -> None:
        self._url = url
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, streams), thread_name_prefix="copy", initializer=self._connect
        )

    def _connect(self) -> None:
        connection = psycopg.connect(self._url, autocommit=True)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)

    def submit(self, work: Callable[[psycopg.Connection], T]) -> Future[T]:
        """Run `work(connection)` on a free stream."""
        return self._executor.submit(lambda: work(self._local.connection))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for connection in self._connections:
            connection.close()

    def __enter__(self) -> CopyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def results_in_order(futures: list[Future[T]]) -> list[T]:
    """Wait for every future, then return their results or raise the first error.

    Waiting for all before raising keeps a failed sub-batch from leaving its siblings'
    audit rows RUNNING while the batch is already marked FAILED.
    """
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
