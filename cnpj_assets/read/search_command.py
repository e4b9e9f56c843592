"""`cnpj-assets search`: a page as a table or JSON, or every row as streamed CSV.

A page prints the cursor of the next one; `--format csv` ignores `--limit` and
`--cursor` and writes every matching row from one query (`search.stream_rows`), with a
progress line on stderr, so an export of millions of rows holds one batch in memory.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

import psycopg

from cnpj_assets.postgres.server import server_url
from cnpj_assets.read.search import COLUMNS, SearchFilters, search_page, stream_rows

TABLE_COLUMNS = (
    ("cnpj", 14),
    ("razao_social", 34),
    ("nome_fantasia", 22),
    ("situacao_cadastral_descricao", 8),
    ("uf", 2),
    ("municipio_descricao", 18),
    ("cnae_fiscal_principal", 7),
)
"""What a terminal row shows (the JSON and the CSV carry every column)."""


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO, progress: TextIO | None) -> int:
    """Write the header and the rows; a progress line (rows, rows/s) about every second."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    started = shown = time.perf_counter()
    count = 0
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
        count += 1
        now = time.perf_counter()
        if progress is not None and now - shown >= 1:
            shown = now
            rate = count / (now - started)
            print(f"\rexported {count:,} rows ({rate:,.0f} rows/s)", end="", file=progress)
    if progress is not None:
        seconds = max(time.perf_counter() - started, 1e-9)
        print(
            f"\rexported {count:,} rows in {seconds:.1f} s ({count / seconds:,.0f} rows/s)",
            file=progress,
        )
    return count


def _cell(value: object, width: int) -> str:
    text = "" if value is None else str(value)
    return text[:width].ljust(width)


def format_table(rows: list[dict[str, Any]]) -> str:
    header = " ".join(_cell(name, width) for name, width in TABLE_COLUMNS)
    lines = [header.rstrip()]
    lines += [" ".join(_cell(row[n], w) for n, w in TABLE_COLUMNS).rstrip() for row in rows]
    return "\n".join(lines)


def run(
    filters: SearchFilters,
    limit: int,
    cursor: str | None,
    output: str,
    out_file: str | None,
    release: str | None,
    database_url: str | None = None,
) -> int:
    """The command: print a page (table or json) or export every row (csv); exit code 0."""
    url = database_url or server_url().url
    target = (
        open(Path(out_file), "w", newline="", encoding="utf-8")  # noqa: SIM115
        if out_file
        else nullcontext(sys.stdout)
    )  # noqa: SIM115
    with psycopg.connect(url) as connection, target as out:
        if output == "csv":
            write_csv(stream_rows(connection, filters, release), out, sys.stderr)
            return 0
        rows, following = search_page(connection, filters, limit, cursor, release)
        if output == "json":
            page = {"rows": rows, "next_cursor": following}
            print(json.dumps(page, ensure_ascii=False, indent=1), file=out)
            return 0
        print(format_table(rows), file=out)
        if following:
            print(f"next page: --cursor {following}", file=sys.stderr)
        else:
            print(f"{len(rows)} row(s), the last page", file=sys.stderr)
    return 0
