"""How much one file may cost before it is given up: a number of stalls and a deadline.

A stall costs one stall timeout and the retry resumes where it broke, so a file that
stalls now and then still finishes; one that stalls more often than the share lets it
through, or never sends the rest, must end in a clear error, or the download never ends.
The deadline counts only the time the file itself spends (its requests and back-off),
not the time it waits for a free stream while the others download: a file queued behind
a narrowed limit has done nothing wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class FilePatience:
    """The stalls a file has had and the time it has spent, against its limits."""

    def __init__(
        self,
        max_stalls: int,
        deadline_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_stalls, self.deadline_seconds, self._clock = max_stalls, deadline_seconds, clock
        self.stalls = 0
        self._spent = 0.0
        self._since: float | None = None

    @contextmanager
    def spending(self) -> Iterator[None]:
        """Count the time inside the block against the deadline."""
        self._since = self._clock()
        try:
            yield
        finally:
            self._spent += self._clock() - self._since
            self._since = None

    def spent(self) -> float:
        running = self._clock() - self._since if self._since is not None else 0.0
        return self._spent + running

    def time_left(self) -> float:
        return self.deadline_seconds - self.spent()

    def stalled(self) -> None:
        self.stalls += 1

    def exhausted(self) -> str | None:
        """Why the file must be given up, or None while it may go on."""
        if self.time_left() <= 0:
            return f"its deadline of {self.deadline_seconds:g} s passed"
        if self.stalls > self.max_stalls:
            return f"it stalled {self.stalls} times, more than the {self.max_stalls} allowed"
        return None
