"""Export benchmark: an already loaded release written as Parquet, table by table.

Usage: CNPJ_HOME=... python benchmarks/bench_export.py --release 2026-10 --out DIR_OR_URL
                                           [--format parquet|csv] [--table T ...]
                                           [--no-reference]

It only reads the release (nothing in PostgreSQL is written but the audit schema, when
it is not current): run it on a loaded, published release. Per table it prints the rows,
seconds, rows/s, bytes (and per row), the row groups and their uncompressed size, and two
ratios: to the table's load in the audit (another run, same machine) and to a reference
measured in the same run, right after: the same rows read by COPY and thrown away, which
is the floor of any export that reads PostgreSQL once (lower ratios are better). Then the
totals, with the CPU of this process and of PostgreSQL, and this process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_full import postmaster_pid  # noqa: E402
from common import (  # noqa: E402
    RELEASE,
    peak_rss_mib,
    postgres_cpu_seconds,
    process_cpu_seconds,
    reset_peak_rss,
)

from cnpj_assets.export.destination import resolve  # noqa: E402
from cnpj_assets.export.formats import FORMATS, PARQUET  # noqa: E402
from cnpj_assets.export.manifest import ExportedTable  # noqa: E402
from cnpj_assets.export.release import export_release, table_query  # noqa: E402
from cnpj_assets.export.rows import BLOCK_BYTES, CopyOut  # noqa: E402
from cnpj_assets.postgres.server import cnpj_home, server_url  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402

MIB = 2**20
LOAD_SECONDS_SQL = "SELECT seconds FROM cnpj_audit.table_load WHERE id = %s"


def copy_seconds(url: str, table: str, release: str) -> float:
    """The same rows through the same COPY and psql, read and dropped: reading
    PostgreSQL, nothing else."""
    started = time.perf_counter()
    with (
        psycopg.connect(url) as connection,
        CopyOut(connection, table_query(table, release), header=False) as copy,
    ):
        while copy.stream.read(BLOCK_BYTES):
            pass
        copy.finish()
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """This process's CPU and its ended children's: the psql processes of the COPYs."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return process_cpu_seconds() + children.ru_utime + children.ru_stime


def table_line(table: ExportedTable, load_seconds: float | None, reference: float | None) -> str:
    rows = max(table.rows, 1)
    groups = sum(f.row_groups for f in table.files)
    uncompressed = sum(f.uncompressed_bytes for f in table.files)
    per_group = f"{uncompressed / groups / MIB:,.0f}" if groups else "-"
    rate = table.rows / table.seconds
    return (
        f"{table.name:<17} {table.rows:>12,} {table.seconds:>8.1f} {rate:>10,.0f} "
        f"{table.bytes / MIB:>9,.1f} {table.bytes / rows:>6.1f} {groups:>4} {per_group:>7} "
        f"{table.seconds / load_seconds if load_seconds else 0:>7.2f} "
        f"{table.seconds / reference if reference else 0:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--release", default=RELEASE, help="a loaded release, YYYY-MM")
    parser.add_argument("--out", required=True, help="a folder or a pyarrow.fs URL")
    parser.add_argument("--format", choices=FORMATS, default=PARQUET)
    parser.add_argument("--table", action="append", choices=list(TABLES), help="default all")
    parser.add_argument("--force", action="store_true", help="export a release not published")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the COPY read of each table"
    )
    args = parser.parse_args()
    server = server_url()
    postmaster = postmaster_pid(cnpj_home() / "pgdata")
    print(f"PostgreSQL: {server.redacted()}; export to {args.out}", flush=True)
    reset_peak_rss()
    cpu, postgres_cpu = cpu_seconds(), postgres_cpu_seconds(postmaster)
    done = export_release(
        server.url,
        args.release,
        resolve(args.out),
        args.format,
        args.table,
        force=args.force,
        say=lambda line: print(line, flush=True),
    )
    cpu, postgres_cpu = (
        cpu_seconds() - cpu,
        postgres_cpu_seconds(postmaster) - postgres_cpu,
    )
    peak = peak_rss_mib()
    with psycopg.connect(server.url) as connection:
        loads = {
            t.name: connection.execute(LOAD_SECONDS_SQL, (t.table_load_id,)).fetchone()[0]
            for t in done.tables
            if t.table_load_id is not None
        }
    print(
        f"\n{'table':<17} {'rows':>12} {'s':>8} {'rows/s':>10} {'MiB':>9} {'B/row':>6} "
        f"{'RGs':>4} {'MiB/RG':>7} {'/load':>7} {'/COPY':>7}"
    )
    for table in done.tables:
        reference = None
        if table.table_load_id is not None and not args.no_reference:
            reference = copy_seconds(server.url, table.name, args.release)
        print(table_line(table, loads.get(table.name), reference), flush=True)
    rows = sum(t.rows for t in done.tables if t.table_load_id is not None)
    size = sum(t.bytes for t in done.tables)
    print(
        f"\n{args.release}: {rows:,} rows in {done.seconds:.1f} s ({rows / done.seconds:,.0f} "
        f"rows/s), {size / MIB:,.1f} MiB of {args.format}; CPU {cpu:.1f} s here (psql's too) and "
        f"{postgres_cpu:.1f} s in PostgreSQL; peak memory {peak:,.0f} MiB; "
        f"export / sum of the loads' seconds = {done.seconds / sum(loads.values()):.2f}"
    )


if __name__ == "__main__":
    main()
