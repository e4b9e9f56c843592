"""Run an iterator ahead in a thread, so reading overlaps with writing.

DuckDB releases the GIL while it parses, so the next batch is read while the current
one is COPYed. The queue is bounded: memory holds at most `depth` items ahead. The
thread starts when the iterator is made, not when it is first asked for an item, so
a file's first batch can be read while the file before it is still being consumed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class Prefetched(Generic[T]):
    """What `items` yields, produced in a background thread; errors are re-raised.

    Call `close()` (or use `contextlib.closing`) once done, whether or not it was
    exhausted: it stops the thread and lets `items` clean up in that thread.
    """

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._items = items
        self._buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name="prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(error)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator's own cleanup (DuckDB connection) runs in this thread

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._buffer.get()
        if item is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        return item

    def close(self) -> None:
        """Stop producing and wait for the thread; safe to call more than once."""
        self._finished = True
        self._stop.set()
        self._thread.join()
