"""Shared pieces of the benchmarks: making one big synthetic file, measuring time and memory.

Every benchmark prints a ratio to a reference measured in the same run, because the
machines are shared and noisy: absolute seconds mean little, ratios travel.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.specs import TABLES, TableSpec
from cnpj_assets.synthetic import write_release

RELEASE = "2026-10"
SHARE_OF_FILE_0 = 0.41  # the generator puts 41% of the companies in file 0
ESTABELECIMENTOS_PER_COMPANY = 1.05

T = TypeVar("T")


def companies_for_file0_rows(rows: int) -> int:
    """Companies a release needs for Estabelecimentos0 to hold about `rows` rows."""
    return int(rows / (SHARE_OF_FILE_0 * ESTABELECIMENTOS_PER_COMPANY)) + 1


def make_files(folder: Path, rows: int, zips: list[str]) -> Path:
    """Write only the named zips of a release sized so Estabelecimentos0 has ~`rows` rows."""
    write_release(RELEASE, companies_for_file0_rows(rows), folder, seed=1, only=zips)
    return folder / RELEASE


def make_tables(folder: Path, rows: int, tables: list[str]) -> Path:
    """Write every zip of these tables for a release with about `rows` establishments."""
    zips = [name for table in tables for name in TABLES[table].zip_names()]
    write_release(RELEASE, int(rows / ESTABELECIMENTOS_PER_COMPANY), folder, seed=1, only=zips)
    return folder / RELEASE


def timed(function: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def reset_peak_rss() -> None:
    """Start a new peak: what came before (making the synthetic release) is not counted.

    Linux resets VmHWM on writing 5 to clear_refs; ru_maxrss cannot be reset.
    """
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """Peak resident memory of this process since the last `reset_peak_rss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the benchmarks need Linux")


def process_cpu_seconds() -> float:
    """CPU this process has used, all threads, user and system.

    Far less noisy than wall time on a shared machine: a change that saves work shows
    here even when the wall clock cannot tell.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postgres_cpu_seconds(postmaster: int | None = None) -> float:
    """CPU used by this machine's PostgreSQL processes, ended backends included.

    An ended backend's time moves to the postmaster's children counters, so those are
    added too. Zero when the server runs elsewhere: the caller then cannot say how
    close the load came to the machine's cores. With `postmaster`, only that server
    counts: other servers on a shared machine are other people's work.
    """
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a backend that ended while the list was read
            continue
        if postmaster is not None and postmaster not in (int(pid), int(fields[1])):
            continue  # fields[1] is the parent
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def checkpoint(server: ServerUrl) -> None:
    """Start a measurement right after a checkpoint, as the other one did.

    Each table's COPY writes about as much WAL as triggers a checkpoint (max_wal_size
    1 GB), so which side a checkpoint fell on was luck. With checksums on, the first
    hint bit set on a page older than the last checkpoint writes a full-page image:
    one 2 M-row load logged 25,944 of them (~200 MB), mostly while building its key.
    Needs the right to CHECKPOINT (the embedded server's user has it); without it the
    measurement runs as it comes.
    """
    with psycopg.connect(server.url, autocommit=True) as connection:
        try:
            connection.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            return


class BusyCores:
    """The share of the machine's cores busy between `start` and `stop`, from /proc/stat.

    Counts every process (PostgreSQL's backends too): what a user's machine spends.
    """

    @staticmethod
    def _ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]  # idle, iowait
        return sum(values) - idle, sum(values)

    def start(self) -> None:
        self._busy, self._total = self._ticks()

    def stop(self) -> float:
        busy, total = self._ticks()
        return (busy - self._busy) / max(1, total - self._total)


def drop_release_tables(server: ServerUrl, spec: TableSpec, release: str = RELEASE) -> None:
    """Drop the release's children of a table: before a load, and once it is measured.

    Every run is then a first load (a reload also drops the old child in its timed
    swap), and no table is left for autovacuum to work through under the next
    measurement: a vacuum of an earlier run's child held the swap's lock for a
    second, an eighth of a 2 M-row load.
    """
    name = tables.child_name(spec, release)
    with psycopg.connect(server.url, autocommit=True) as connection:
        leftovers = connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND left(c.relname, %s) = %s",
            (tables.SCHEMA, len(name), name),
        ).fetchall()
        for (leftover,) in leftovers:
            connection.execute(sql.SQL("DROP TABLE {}").format(tables.qualified(leftover)))
