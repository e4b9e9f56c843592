"""What a release folder in the landing zone holds right now, as the sensors see it.

A snapshot is the size and mtime of each of the 37 expected zips, plus the `_SUCCESS`
marker's mtime. Two equal snapshots on consecutive ticks, or a marker newer than every
zip, mean "stable": nobody is still copying. Fingerprints of the snapshot (or of one
table's files) make run keys that change exactly when the files do.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cnpj_assets.specs import TABLES

SUCCESS_MARKER = "_SUCCESS"
FileStat = tuple[int, int]  # size in bytes, mtime in nanoseconds


def expected_zip_names() -> tuple[str, ...]:
    """The 37 zip names of a complete release, lookups first."""
    return tuple(name for spec in TABLES.values() for name in spec.zip_names())


def _fingerprint(items: dict[str, FileStat]) -> str:
    text = json.dumps(sorted(items.items()), separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FolderSnapshot:
    """The expected zips present in one release folder (canonical names) and the marker."""

    release: str
    files: dict[str, FileStat]
    marker_mtime_ns: int | None

    def missing(self) -> list[str]:
        return [name for name in expected_zip_names() if name not in self.files]

    @property
    def is_complete(self) -> bool:
        return not self.missing()

    @property
    def marked_complete(self) -> bool:
        """`_SUCCESS` was written after the last zip changed: the writer says it is done."""
        if self.marker_mtime_ns is None or not self.files:
            return False
        return self.marker_mtime_ns >= max(mtime for _, mtime in self.files.values())

    def table_files(self, table: str) -> dict[str, FileStat]:
        names = TABLES[table].zip_names()
        return {name: self.files[name] for name in names if name in self.files}

    def fingerprint(self) -> str:
        return _fingerprint(self.files)

    def table_fingerprint(self, table: str) -> str:
        return _fingerprint(self.table_files(table))

    def newest_mtime_ns(self, table: str) -> int:
        return max((mtime for _, mtime in self.table_files(table).values()), default=0)


def take_snapshot(folder: Path, release: str) -> FolderSnapshot:
    """Stat the folder's zips; names are matched to the expected ones ignoring case."""
    canonical = {name.lower(): name for name in expected_zip_names()}
    files: dict[str, FileStat] = {}
    marker: int | None = None
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file() or entry.name.startswith("."):
                continue
            if entry.name == SUCCESS_MARKER:
                marker = entry.stat().st_mtime_ns
                continue
            name = canonical.get(entry.name.lower())
            if name is not None:
                stat = entry.stat()
                files[name] = (stat.st_size, stat.st_mtime_ns)
    return FolderSnapshot(release, files, marker)
