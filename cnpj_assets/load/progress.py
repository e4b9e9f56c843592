"""Progress a person can read: rows, rate, how far through the file and the table, time left.

The table's size is known up front from the zips' directories (uncompressed member
sizes, read without inflating anything), so the table's share done is measured in
bytes: whole files finished plus the finished share of the current one.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

BAR_WIDTH = 20


def member_bytes(zip_path: Path) -> int:
    """Uncompressed size of a zip's members, from its central directory; 0 if unreadable."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def bar(share: float) -> str:
    filled = round(max(0.0, min(share, 1.0)) * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


@dataclass
class TableProgress:
    """Tracks one table load across its files."""

    table: str
    total_bytes: int
    started: float = field(default_factory=time.perf_counter)
    done_bytes: int = 0  # of the files already finished
    rows: int = 0

    @classmethod
    def for_files(cls, table: str, zips: list[Path]) -> TableProgress:
        return cls(table, sum(member_bytes(path) for path in zips))

    def file_started(self) -> FileProgress:
        return FileProgress(self)


@dataclass
class FileProgress:
    """One file of a table load; `report` formats a line per batch."""

    table: TableProgress
    started: float = field(default_factory=time.perf_counter)
    rows: int = 0

    def report(self, zip_name: str, rows_now: int, file_lines: int, file_bytes: int) -> str:
        self.table.rows += rows_now - self.rows
        self.rows = rows_now
        now = time.perf_counter()
        file_share = min(rows_now / max(file_lines, 1), 1.0)
        table_share = (self.table.done_bytes + file_share * file_bytes) / max(
            self.table.total_bytes, 1
        )
        rate = rows_now / max(now - self.started, 1e-9)
        file_left = (now - self.started) * (1 - file_share) / max(file_share, 1e-9)
        table_left = (now - self.table.started) * (1 - table_share) / max(table_share, 1e-9)
        return (
            f"{self.table.table} {zip_name}: {bar(table_share)} {rows_now:,} rows, "
            f"{file_share:.0%} of the file, {table_share:.0%} of the table, {rate:,.0f} rows/s, "
            f"about {_duration(file_left)} left for the file, {_duration(table_left)} for the table"
        )

    def finished(self, file_bytes: int) -> None:
        self.table.done_bytes += file_bytes
