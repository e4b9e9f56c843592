"""What a running load holds, sampled in a thread: its memory, PostgreSQL's, and disk.

A load of a quarter of a release runs for many minutes in another process (the CLI, as
a user runs it) next to PostgreSQL's own processes, so its peaks can only be caught by
looking while it runs. Each sample reads /proc and walks two folders, a few ms: twice a
second costs the machine nothing a measurement would see.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


def _status_kib(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    """Fields of /proc/<pid>/status in KiB; empty when the process is gone."""
    values = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        if name in names:
            values[name] = int(rest.split()[0])
    return values


def _children(parents: set[int]) -> set[int]:
    """Every process whose parent is one of `parents`, found by reading /proc/*/stat."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) in parents:
            found.add(int(entry))
    return found


def folder_bytes(folder: Path) -> int:
    """Disk allocated to the files under `folder` (blocks, not lengths); 0 if it is absent."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # gone, or a temporary folder removed while walked
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


@dataclass(frozen=True)
class Sample:
    """One look at the machine, `at` in seconds of the epoch (the audit's clock)."""

    at: float
    load_rss: int  # the load process and its descendants, bytes
    postgres_private: int  # PostgreSQL's processes: the sum of their own (anonymous) memory
    postgres_shared: int  # the shared memory they touched (shared_buffers in use)
    postgres_process_peak: int  # the largest peak (VmHWM) of a live PostgreSQL process
    data_bytes: int  # the PostgreSQL data folder, its WAL included
    wal_bytes: int  # the WAL alone (pg_wal): bounded by max_wal_size, not by the rows
    scratch_bytes: int  # the loader's scratch folder
    free_disk: int  # free bytes on the data folder's file system


@dataclass
class UsageSampler:
    """Samples a load process, a PostgreSQL server and two folders until stopped."""

    load_pid: int
    postmaster_pid: int
    data_dir: Path
    scratch_dir: Path
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def take(self) -> Sample:
        """One sample now (also taken before the load starts, as the baseline)."""
        load = sum(
            _status_kib(pid, ("VmRSS",)).get("VmRSS", 0)
            for pid in {self.load_pid} | _children({self.load_pid})
        )
        private = shared = peak = 0
        for pid in {self.postmaster_pid} | _children({self.postmaster_pid}):
            status = _status_kib(pid, ("RssAnon", "RssShmem", "VmHWM"))
            private += status.get("RssAnon", 0)
            shared = max(shared, status.get("RssShmem", 0))
            peak = max(peak, status.get("VmHWM", 0))
        return Sample(
            at=time.time(),
            load_rss=load * 1024,
            postgres_private=private * 1024,
            postgres_shared=shared * 1024,
            postgres_process_peak=peak * 1024,
            data_bytes=folder_bytes(self.data_dir),
            wal_bytes=folder_bytes(self.data_dir / "pg_wal"),
            scratch_bytes=folder_bytes(self.scratch_dir),
            free_disk=shutil.disk_usage(self.data_dir).free,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.take())

    def start(self) -> None:
        self.samples.append(self.take())
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.take())

    def peak(self, attribute: str, start: float = 0.0, end: float = float("inf")) -> int:
        """The largest value of a Sample field between two instants (epoch seconds)."""
        return max(getattr(s, attribute) for s in self.samples if start <= s.at <= end)
