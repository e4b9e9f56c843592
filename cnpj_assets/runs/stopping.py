"""A stop asked of a run (Ctrl-C, SIGTERM, the UI's Terminate, a crashed run), for its loads.

Dagster turns SIGINT and SIGTERM into a flag that only the run's orchestrating thread
reads; the table loads run in other threads of the same process (executor.py) and
would go on for minutes. The executor sets the run's StopRequest; a load checks it
between batches, wakes from a retry's wait, and has its running statement cancelled
(every step of a load is transactional, so a cancel loses nothing that was committed).
Free of Dagster, like the loader that reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class LoadStopped(RuntimeError):
    """A load ended early because its run was asked to stop; it resumes on the next run."""


class StopRequest:
    """Set once, with the reason; callbacks run when it is set (or at once if it was)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""

    def set(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True, at once, if the stop comes meanwhile."""
        return self._event.wait(seconds)

    def stopped(self, where: str) -> LoadStopped:
        """The error a load at `where` ends with once the stop was asked for."""
        return LoadStopped(
            f"{where}: stopped ({self.reason}); the next run resumes from the committed sub-batches"
        )

    def check(self, where: str) -> None:
        """Raise LoadStopped naming `where` if the stop was asked for."""
        if self.is_set():
            raise self.stopped(where)

    @contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run `callback` if the stop comes while inside (e.g. cancel a running statement)."""
        with self._lock:
            self._callbacks.append(callback)
            already = self._event.is_set()
        try:
            if already:
                callback()
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)


_requests: dict[str, StopRequest] = {}
_requests_lock = threading.Lock()


def stop_request(run_id: str) -> StopRequest:
    """The run's StopRequest, shared by its executor and its steps (threads of one process)."""
    with _requests_lock:
        return _requests.setdefault(run_id, StopRequest())


def forget(run_id: str) -> None:
    """Drop the run's request once the run is over in this process."""
    with _requests_lock:
        _requests.pop(run_id, None)
