"""A release download's totals for its progress lines: files in place, bytes, rate, stalls.

The files stream in threads of their own; one place that counts for all of them lets
every line (a file's progress, a stall, a file in place) end with the same picture of the
whole download, so a person sees at a glance whether stalls are eating the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from cnpj_assets.source.listing import RemoteFile

MB = 1024 * 1024


def rate(byte_count: int, seconds: float) -> str:
    """Megabytes per second, readable."""
    return f"{byte_count / MB / max(seconds, 1e-6):,.2f} MB/s"


class DownloadMeter:
    """Counts bytes received, stalls, resumes and files in place across the streams."""

    def __init__(
        self, files: Sequence[RemoteFile], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._files, self._listed_bytes = len(files), sum(f.size or 0 for f in files)
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.received_bytes = self.stalls = self.resumes = self.placed = self.placed_bytes = 0

    def received(self, byte_count: int) -> None:
        with self._lock:
            self.received_bytes += byte_count

    def stalled(self) -> None:
        with self._lock:
            self.stalls += 1

    def resumed(self) -> None:
        with self._lock:
            self.resumes += 1

    def in_place(self, size: int) -> None:
        with self._lock:
            self.placed += 1
            self.placed_bytes += size

    def summary(self) -> str:
        with self._lock:
            return (
                f"{self.placed} of {self._files} files in place, "
                f"{self.placed_bytes / MB:,.1f} of {self._listed_bytes / MB:,.1f} MB; "
                f"received {self.received_bytes / MB:,.1f} MB at "
                f"{rate(self.received_bytes, self._clock() - self._started)}, "
                f"{self.stalls} stalls, {self.resumes} resumes"
            )
