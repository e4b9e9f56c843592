"""Reader benchmark: rows/s of the typed reader against a plain DuckDB count, same file.

Usage: python benchmarks/bench_reader.py --rows 2000000
Prints rows/s of each, the peak memory, and last the ratio reader/count (target >= 0.7).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import make_files, peak_rss_mib, reset_peak_rss, timed  # noqa: E402

from cnpj_assets.reader import ReaderSettings, extract_member, read_member  # noqa: E402
from cnpj_assets.reader.typing_sql import ReadOptions, read_csv_call  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402

SPEC = TABLES["estabelecimentos"]


def plain_count(path: Path) -> int:
    """The reference: DuckDB parsing the same file with the same dialect and threads."""
    connection = duckdb.connect(config={"threads": ReaderSettings().duckdb_threads})
    sql = f"SELECT count(*) FROM {read_csv_call(SPEC, str(path), ReadOptions())}"  # noqa: S608
    (count,) = connection.execute(sql).fetchone()
    connection.close()
    return int(count)


def read_everything(member) -> int:
    read = read_member(SPEC, member, ReaderSettings())
    rows = sum(batch.data.num_rows for batch in read.batches())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_files(Path(tmp), args.rows, ["Estabelecimentos0.zip"])
        reset_peak_rss()
        member = extract_member(folder / "Estabelecimentos0.zip", Path(tmp) / "scratch")
        print(f"file: {member.member_name}, {member.stats.bytes / 2**20:,.0f} MiB")
        count, count_seconds = timed(lambda: plain_count(member.path))
        rows, read_seconds = timed(lambda: read_everything(member))
        # a second round of each evens out a cold page cache and a busy neighbour
        _, count_again = timed(lambda: plain_count(member.path))
        _, read_again = timed(lambda: read_everything(member))
    assert rows == count, f"reader gave {rows} rows, DuckDB counted {count}"
    count_rate = count / min(count_seconds, count_again)
    read_rate = rows / min(read_seconds, read_again)
    print(f"plain DuckDB count: {count:,} rows at {count_rate:,.0f} rows/s")
    print(f"typed reader:       {rows:,} rows at {read_rate:,.0f} rows/s")
    print(f"peak memory of extracting, counting and reading: {peak_rss_mib():,.0f} MiB")
    print(f"ratio reader/count: {read_rate / count_rate:.2f}")


if __name__ == "__main__":
    main()
