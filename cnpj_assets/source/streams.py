"""How many downloads stream at once: fewer while the share stalls them, more as they flow.

The Receita's share stalls parallel streams (the connection stays open, nothing comes),
so a stall is read as "maybe too many streams": one stream fewer, down to the minimum.
Streams open before a cut stall on their own schedule, so stalls within one stall timeout
of a cut are one episode and cut once (TCP's once per round trip). A file that completes,
or a stream that keeps receiving for a stall timeout, adds one back, up to the maximum.
One fewer, not half: streams that stall on their own, not from crowding, would otherwise
collapse the download to one stream for nothing (the numbers: docs/notebook.md,
"Downloads and stalls").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StreamGate:
    """The limit on streams at once: one fewer per stall episode, one more per sign of flow."""

    def __init__(
        self,
        min_streams: int,
        max_streams: int,
        episode_seconds: float,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= min_streams <= max_streams:
            raise ValueError(
                f"parallel streams: need 1 <= minimum ({min_streams}) <= maximum ({max_streams})"
            )
        self.min_streams, self.max_streams = min_streams, max_streams
        self._episode_seconds, self._log, self._clock = episode_seconds, log, clock
        self._condition = threading.Condition()
        self.limit = max_streams
        self.active = 0
        self._last_cut: float | None = None

    @contextmanager
    def stream(self) -> Iterator[None]:
        """Hold one of the places the limit allows, waiting for one if none is free."""
        with self._condition:
            self._condition.wait_for(lambda: self.active < self.limit)
            self.active += 1
        try:
            yield
        finally:
            with self._condition:
                self.active -= 1
                self._condition.notify_all()

    def stalled(self) -> None:
        """A stream went silent: one stream fewer, once per episode."""
        with self._condition:
            now = self._clock()
            if self._last_cut is not None and now - self._last_cut < self._episode_seconds:
                return
            self._last_cut = now
            self._set(max(self.min_streams, self.limit - 1), "a stream stalled")

    def flowed(self) -> None:
        """A file completed or a stream kept receiving: one stream more."""
        with self._condition:
            self._set(min(self.max_streams, self.limit + 1), "transfers flow")
            self._condition.notify_all()

    def describe(self) -> str:
        with self._condition:
            return (
                f"{self.active} streaming, limit {self.limit} "
                f"({self.min_streams}-{self.max_streams})"
            )

    def _set(self, limit: int, why: str) -> None:
        if limit != self.limit:
            self._log(f"parallel streams {self.limit} -> {limit}: {why}")
            self.limit = limit
