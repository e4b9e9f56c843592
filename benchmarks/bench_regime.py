"""Regime benchmark: a regime_tributario folder of the real size through the loader,
against PostgreSQL's own COPY of the same rows in the same run.

Usage: python benchmarks/bench_regime.py --rows 5000000 --companies 2000000 --rounds 2

It writes a synthetic folder (`--rows` rows over `--companies` head offices, Lucro
Presumido split in two, as some listings show it), then per round loads it as a
snapshot through the loader (zip -> DuckDB -> COPY, header and CNPJ normalisation,
audit and `_subbatch_id`, index, swap) and, as the reference, COPYs the loaded rows,
already clean and typed, from a local file into an identical table with one stream and
builds the same indexes. Printed: each round's seconds and the ratio reference/load
(higher is better; 1.0 would be a load as fast as a bare COPY), then the disk the
snapshot adds: its zips in the landing zone and its table with indexes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import Timing, export_clean_rows, reference  # noqa: E402
from common import checkpoint, drop_release_tables, timed  # noqa: E402

from cnpj_assets.load.loader import LoadSettings, TableLoader  # noqa: E402
from cnpj_assets.postgres import tables  # noqa: E402
from cnpj_assets.postgres.server import ServerUrl, server_url  # noqa: E402
from cnpj_assets.regime.landing import discover_snapshot  # noqa: E402
from cnpj_assets.regime.spec import REGIME_TRIBUTARIO  # noqa: E402
from cnpj_assets.synthetic.regime import write_regime_folder  # noqa: E402

SNAPSHOT = "2025-01-14"
MIB = 1024 * 1024


def load(server: ServerUrl, landing: Path, scratch: Path) -> tuple[Timing, int]:
    """A full load of the snapshot (never a resume); its timing and the table's bytes."""
    files = discover_snapshot(landing, SNAPSHOT)
    loader = TableLoader(
        server.url, LoadSettings(scratch_dir=scratch, full_reload=True), progress=lambda _: None
    )
    checkpoint(server)
    summary, seconds = timed(lambda: loader.load_files(REGIME_TRIBUTARIO, SNAPSHOT, files))
    tree = summary.tree
    with psycopg.connect(server.url) as connection:
        (size,) = connection.execute(
            "SELECT pg_total_relation_size(%s::regclass)", (summary.target_table,)
        ).fetchone() or (0,)
    return Timing(int(tree["rows"]), seconds, float(tree["index_seconds"])), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--companies", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server = server_url()
    print(f"PostgreSQL: {server.redacted()}")
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        written, seconds = timed(
            lambda: write_regime_folder(landing, SNAPSHOT, args.rows, args.companies)
        )
        zip_bytes = sum(path.stat().st_size for path in written.folder.glob("*.zip"))
        print(
            f"folder: {written.rows:,} rows in {len(written.zips)} zips, "
            f"{zip_bytes / MIB:,.1f} MiB, written in {seconds:.0f} s"
        )
        ratios, table_bytes = [], 0
        for round_number in range(1, args.rounds + 1):
            drop_release_tables(server, REGIME_TRIBUTARIO, SNAPSHOT)
            run, table_bytes = load(server, landing, Path(tmp) / "scratch")
            clean = Path(tmp) / "regime.copy"
            export_clean_rows(server, REGIME_TRIBUTARIO, clean, SNAPSHOT)
            drop_release_tables(server, REGIME_TRIBUTARIO, SNAPSHOT)
            base = reference(server, REGIME_TRIBUTARIO, clean, run.rows, SNAPSHOT)
            clean.unlink()
            ratios.append(base.seconds / run.seconds)
            print(
                f"round {round_number}: {run.describe('load')}; "
                f"{base.describe('reference COPY + indexes')}; ratio {ratios[-1]:.2f}"
            )
        drop_release_tables(server, REGIME_TRIBUTARIO, SNAPSHOT)
    print(
        f"disk the snapshot adds: zips {zip_bytes / MIB:,.0f} MiB, table and index "
        f"{table_bytes / MIB:,.0f} MiB ({tables.child_name(REGIME_TRIBUTARIO, SNAPSHOT)})"
    )
    print(
        f"ratio reference/load: {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} rounds)"
    )


if __name__ == "__main__":
    main()
