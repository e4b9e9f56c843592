"""How hard, how wide and how patiently a release is downloaded.

The defaults are explained in docs/operating.md ("Stalls"), their measurements in
docs/notebook.md: the stall
timeout sits far above the longest silence of a slow but live transfer and far below the
60 s socket timeout that used to be the only way to notice a stall; the stall budget and
the deadline let the largest zip (Estabelecimentos0, ~1.3 GB) through a share that stalls
every few dozen MB (~50 stalls) at a slow stream's rate.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class DownloadSettings:
    """Streams, stalls, deadlines and retries of one release download."""

    min_streams: int = 1
    max_streams: int = 4
    stall_timeout_seconds: float = 20.0
    max_stalls_per_file: int = 100
    file_deadline_seconds: float = 3 * 3600.0
    max_attempts: int = 6
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    chunk_bytes: int = MB
    progress_every_bytes: int = 256 * MB
