"""Load benchmark: the real materialization path against PostgreSQL's own COPY, same run.

Usage: python benchmarks/bench_load.py --rows 2000000

For estabelecimentos and empresas it loads the table's ten zips of a synthetic release
(file 0 the largest, like a real release; `--rows` establishments, about as many
companies) through the loader: zip -> DuckDB -> COPY, audit and `_subbatch_id`
included, key and indexes built, the child swapped in. The reference COPYs the same
rows, already clean and typed, from a local file into an identical table with one
stream, then builds the same key and indexes. Printed last: the ratio load/reference
per table (higher is better), after a projection of a full release from the measured
rates and the real row counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RELEASE, make_tables, peak_rss_mib, reset_peak_rss, timed  # noqa: E402

from cnpj_assets.landing import Release, discover_release  # noqa: E402
from cnpj_assets.loader import LoadSettings, TableLoader  # noqa: E402
from cnpj_assets.postgres import tables  # noqa: E402
from cnpj_assets.postgres.server import ServerUrl, server_url  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402

REAL_ROWS = {  # cnpj-layout.md, a recent release
    "empresas": 68_600_000,
    "estabelecimentos": 72_000_000,
    "socios": 27_600_000,
    "simples": 40_000_000,
}
LIKE = {"socios": "estabelecimentos", "simples": "empresas"}  # projected with a measured rate
CHUNK = 8 * 1024 * 1024


def load(
    server: ServerUrl, table: str, release: Release, scratch: Path
) -> tuple[int, float, float]:
    """Rows, seconds and peak memory (MiB) of the load alone."""
    loader = TableLoader(server.url, LoadSettings(scratch_dir=scratch), progress=lambda _: None)
    reset_peak_rss()
    summary, seconds = timed(lambda: loader.load(TABLES[table], release))
    return int(summary.tree["rows"]), seconds, peak_rss_mib()


def export_clean_rows(server: ServerUrl, table: str, path: Path) -> None:
    """The loaded rows as COPY text: what the reference feeds PostgreSQL."""
    child = sql.Identifier(tables.child_name(TABLES[table], RELEASE))
    statement = sql.SQL("COPY (SELECT * FROM {}.{}) TO STDOUT").format(
        sql.Identifier(tables.SCHEMA), child
    )
    with (
        psycopg.connect(server.url) as connection,
        open(path, "wb") as sink,
        connection.cursor().copy(statement) as copy,
    ):
        for chunk in copy:
            sink.write(chunk)


def reference(server: ServerUrl, table: str, path: Path) -> float:
    """One COPY stream of clean rows into an identical table, then the same indexes."""
    spec = TABLES[table]
    with psycopg.connect(server.url, autocommit=True) as connection:
        child = tables.create_loading_child(connection, spec, RELEASE, table_load_id=0)
        try:

            def copy_and_index() -> None:
                with (
                    connection.cursor().copy(
                        sql.SQL("COPY {} FROM STDIN").format(child.identifier)
                    ) as copy,
                    open(path, "rb") as source,
                ):
                    while chunk := source.read(CHUNK):
                        copy.write(chunk)
                tables.build_indexes(connection, child)

            _, seconds = timed(copy_and_index)
        finally:
            tables.drop_child(connection, child)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    server = server_url()
    print(f"PostgreSQL: {server.redacted()}")
    rates: dict[str, float] = {}
    ratios: dict[str, float] = {}
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tables(Path(tmp), args.rows, ["estabelecimentos", "empresas"])
        release = discover_release(folder.parent, RELEASE)
        for table in ("estabelecimentos", "empresas"):
            rows, load_seconds, peaks[table] = load(server, table, release, Path(tmp) / "scratch")
            clean = Path(tmp) / f"{table}.copy"
            export_clean_rows(server, table, clean)
            reference_seconds = reference(server, table, clean)
            os.unlink(clean)
            rates[table] = rows / load_seconds
            ratios[table] = reference_seconds / load_seconds
            print(
                f"{table}: {rows:,} rows; load {rates[table]:,.0f} rows/s ({load_seconds:.1f} s), "
                f"reference COPY + indexes {rows / reference_seconds:,.0f} rows/s "
                f"({reference_seconds:.1f} s)"
            )
    print(
        "peak memory of the load: "
        + ", ".join(f"{table} {peak:,.0f} MiB" for table, peak in peaks.items())
    )
    total = sum(REAL_ROWS[t] / rates[LIKE.get(t, t)] for t in REAL_ROWS)
    print(
        f"projection of a full release ({sum(REAL_ROWS.values()) / 1e6:.0f} M rows; socios at the "
        f"estabelecimentos rate, simples at the empresas rate): {total / 60:.1f} min"
    )
    for table, ratio in ratios.items():
        print(f"ratio load/reference {table}: {ratio:.2f}")


if __name__ == "__main__":
    main()
