"""Load benchmark: the real materialization path against PostgreSQL's own COPY, same run.

Usage: python benchmarks/bench_load.py --rows 2000000

For estabelecimentos and empresas it loads the table's ten zips of a synthetic release
(file 0 the largest, like a real release; `--rows` establishments, about as many
companies) through the loader: zip -> DuckDB -> COPY, audit and `_subbatch_id`
included, key and indexes built, the child swapped in; the release's tables are
dropped before each load and once it is measured, untimed, so every run is a first
load and no autovacuum of an earlier table runs under a measurement. The reference
COPYs the same rows, already clean and typed, from a local file into an identical
table with one stream, then builds the same key and indexes. It also prints each
load's peak memory, the CPU this process and PostgreSQL spent on it (steadier than
wall time on a shared machine), and the ratio that CPU would allow had every core been
busy throughout: how much is lost to idle cores, and how much only less work can win.
Printed last: the ratio load/reference per table (higher is better), after a
projection of a full release from the measured rates and the real row counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RELEASE,
    checkpoint,
    drop_release_tables,
    make_tables,
    peak_rss_mib,
    postgres_cpu_seconds,
    process_cpu_seconds,
    reset_peak_rss,
    timed,
)

from cnpj_assets.landing import Release, discover_release  # noqa: E402
from cnpj_assets.load.loader import LoadSettings, TableLoader  # noqa: E402
from cnpj_assets.postgres import tables  # noqa: E402
from cnpj_assets.postgres.server import ServerUrl, server_url  # noqa: E402
from cnpj_assets.specs import TABLES, TableSpec  # noqa: E402
from cnpj_assets.synthetic.scale import REAL_ROWS  # noqa: E402

REFERENCED = ("estabelecimentos", "empresas")
LIKE = {"socios": "estabelecimentos", "simples": "empresas"}  # projected with a measured rate
CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Timing:
    """A run's seconds in all, and the part spent building the key and indexes."""

    rows: int
    seconds: float
    index_seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def rows_in_seconds(self) -> float:
        """Reading and COPYing the rows: everything but the key and index build."""
        return self.seconds - self.index_seconds

    def describe(self, what: str) -> str:
        return (
            f"{what} {self.rate:,.0f} rows/s ({self.seconds:.1f} s: rows in "
            f"{self.rows_in_seconds:.1f}, key and indexes {self.index_seconds:.1f})"
        )


@dataclass(frozen=True)
class LoadRun:
    """One load's timing, peak memory, and the core-seconds it took on each side."""

    timing: Timing
    peak_mib: float
    own_cpu: float
    postgres_cpu: float

    def best_ratio(self, reference: Timing) -> float:
        """The ratio had every core been busy throughout: the load's CPU, spread evenly.

        No pipeline beats it on this machine without doing less work, so it tells
        what is lost to idle cores and what only less CPU can win. Meaningless (and
        not printed) when PostgreSQL runs on another machine.
        """
        cores = len(os.sched_getaffinity(0))
        return reference.seconds / ((self.own_cpu + self.postgres_cpu) / cores)


def load(server: ServerUrl, table: str, release: Release, scratch: Path) -> LoadRun:
    """Always a full load, never a resume, into a release whose tables `main` dropped."""
    settings = LoadSettings(scratch_dir=scratch, full_reload=True)
    loader = TableLoader(server.url, settings, progress=lambda _: None)
    checkpoint(server)
    reset_peak_rss()
    own_before, postgres_before = process_cpu_seconds(), postgres_cpu_seconds()
    summary, seconds = timed(lambda: loader.load(TABLES[table], release))
    own_cpu = process_cpu_seconds() - own_before
    postgres_cpu = postgres_cpu_seconds() - postgres_before
    tree = summary.tree
    timing = Timing(int(tree["rows"]), seconds, float(tree["index_seconds"]))
    return LoadRun(timing, peak_rss_mib(), own_cpu, postgres_cpu)


def export_clean_rows(
    server: ServerUrl, spec: TableSpec, path: Path, release: str = RELEASE
) -> None:
    """The loaded rows as COPY text: what the reference feeds PostgreSQL."""
    child = tables.qualified(tables.child_name(spec, release))
    statement = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(child)
    with (
        psycopg.connect(server.url) as connection,
        open(path, "wb") as sink,
        connection.cursor().copy(statement) as copy,
    ):
        for chunk in copy:
            sink.write(chunk)


def reference(
    server: ServerUrl, spec: TableSpec, path: Path, rows: int, release: str = RELEASE
) -> Timing:
    """One COPY stream of clean rows into an identical table, then the same indexes."""
    with psycopg.connect(server.url, autocommit=True) as connection:
        child = tables.create_loading_child(connection, spec, release, table_load_id=0)
        checkpoint(server)
        try:

            def copy() -> None:
                statement = sql.SQL("COPY {} FROM STDIN").format(child.identifier)
                with connection.cursor().copy(statement) as stream, open(path, "rb") as source:
                    while chunk := source.read(CHUNK):
                        stream.write(chunk)

            _, copy_seconds = timed(copy)
            _, index_seconds = timed(lambda: tables.build_indexes(connection, child))
        finally:
            tables.drop_child(connection, child)
    return Timing(rows, copy_seconds + index_seconds, index_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    server = server_url()
    print(f"PostgreSQL: {server.redacted()}")
    runs: dict[str, LoadRun] = {}
    references: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tables(Path(tmp), args.rows, list(REFERENCED))
        release = discover_release(folder.parent, RELEASE)
        for table in REFERENCED:
            drop_release_tables(server, TABLES[table])
        for table in REFERENCED:
            run = runs[table] = load(server, table, release, Path(tmp) / "scratch")
            clean = Path(tmp) / f"{table}.copy"
            export_clean_rows(server, TABLES[table], clean)
            drop_release_tables(server, TABLES[table])
            references[table] = reference(server, TABLES[table], clean, run.timing.rows)
            os.unlink(clean)
            print(
                f"{table}: {run.timing.rows:,} rows; {run.timing.describe('load')}; "
                f"{references[table].describe('reference COPY + indexes')}"
            )
    print(
        "peak memory of the load: "
        + ", ".join(f"{table} {run.peak_mib:,.0f} MiB" for table, run in runs.items())
    )
    print(
        "CPU during the load, this process and PostgreSQL: "
        + ", ".join(
            f"{table} {run.own_cpu:.1f} + {run.postgres_cpu:.1f} core-s "
            f"({run.own_cpu / run.timing.rows * 1e6:.2f} + "
            f"{run.postgres_cpu / run.timing.rows * 1e6:.2f} per M rows)"
            for table, run in runs.items()
        )
    )
    if all(run.postgres_cpu > 0 for run in runs.values()):
        print(
            "best ratio possible with every core busy throughout (same CPU, no idle): "
            + ", ".join(
                f"{table} {run.best_ratio(references[table]):.2f}" for table, run in runs.items()
            )
        )
    measured = {table: runs[LIKE.get(table, table)].timing for table in REAL_ROWS}
    rows_in = sum(REAL_ROWS[t] / m.rows * m.rows_in_seconds for t, m in measured.items())
    indexes = sum(REAL_ROWS[t] / m.rows * m.index_seconds for t, m in measured.items())
    print(
        f"projection of a full release ({sum(REAL_ROWS.values()) / 1e6:.0f} M rows; socios at the "
        f"estabelecimentos rate, simples at the empresas rate): {(rows_in + indexes) / 60:.1f} min "
        f"(rows in {rows_in / 60:.1f}, key and indexes {indexes / 60:.1f})"
    )
    for table, run in runs.items():
        print(f"ratio load/reference {table}: {references[table].seconds / run.timing.seconds:.2f}")


if __name__ == "__main__":
    main()
