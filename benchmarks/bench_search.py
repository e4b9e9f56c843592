"""Search benchmark: the search indexes' build time and size, and each query kind's latency.

Usage: CNPJ_HOME=/work/bench python benchmarks/bench_search.py --scale 0.25 --release 2026-10

Reuses the release when it is loaded in the database (it is never dropped or reloaded);
otherwise writes a synthetic release at `--scale` and loads it with `cnpj-assets load`.
The search indexes missing on the release are built (`--rebuild` drops this project's
search indexes of the release first, to measure every build), each timed and sized.

Then, for each query kind, `--queries` searches with values sampled from the release
(first page of 20, through `search_page`, as the CLI and the API call it): UF + CNAE,
municipality alone, a 1-word and a 2-word name, a name + UF, a partner document. Each
prints its median and p95 in ms and the ratio of its median to the reference measured
in the same run, a point lookup of one establishment by CNPJ. Last, the CSV export of
the largest UF + CNAE of the sample (`stream_rows` into the CSV writer), in rows/s, with
its ratio to `COPY (SELECT ...) TO STDOUT` of the same establishments.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnpj_assets.commands import load_release  # noqa: E402
from cnpj_assets.landing import default_landing_dir  # noqa: E402
from cnpj_assets.postgres import tables  # noqa: E402
from cnpj_assets.postgres.server import server_url  # noqa: E402
from cnpj_assets.read.search import SearchFilters, search_page, stream_rows  # noqa: E402
from cnpj_assets.read.search_command import write_csv  # noqa: E402
from cnpj_assets.read.search_indexes import (  # noqa: E402
    SEARCH_INDEXES,
    build_search_indexes,
    index_name,
)
from cnpj_assets.synthetic import write_release  # noqa: E402
from cnpj_assets.synthetic.scale import companies_at_scale  # noqa: E402

TARGET_MEDIAN_MS, TARGET_P95_MS = 50.0, 200.0


def _loaded(connection: psycopg.Connection, release: str) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM cnpj.estabelecimentos WHERE release = %s)", (release,)
    ).fetchone()
    return bool(row and row[0])


def _children(connection: psycopg.Connection, release: str) -> list[str]:
    suffix = "_" + release.replace("-", "_")
    return [
        name
        for (name,) in connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relispartition "
            "AND right(c.relname, %s) = %s",
            (tables.SCHEMA, len(suffix), suffix),
        ).fetchall()
    ]


def _drop_search_indexes(connection: psycopg.Connection, release: str) -> None:
    for child in _children(connection, release):
        for index in SEARCH_INDEXES:
            name = sql.Identifier(tables.SCHEMA, index_name(child, index))
            connection.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))


def _release_bytes(connection: psycopg.Connection, release: str) -> int:
    """The release's tables with their load-built indexes (the search indexes excluded)."""
    children = [f"{tables.SCHEMA}.{c}" for c in _children(connection, release)]
    row = connection.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c::regclass)), 0) - coalesce((SELECT "
        "sum(pg_relation_size(i.indexrelid)) FROM pg_index i JOIN pg_class x "
        "ON x.oid = i.indexrelid WHERE i.indrelid = ANY(%s::regclass[]) "
        "AND x.relname LIKE '%%\\_search\\_%%'), 0) FROM unnest(%s::text[]) c",
        (children, children),
    ).fetchone()
    return int(row[0]) if row else 0


def _sample(connection: psycopg.Connection, statement: str, release: str) -> list[tuple]:
    return connection.execute(statement, {"release": release}).fetchall()


SAMPLES = {
    "establishments": """
        SELECT e.cnpj_basico, e.cnpj_ordem, e.cnpj_dv, e.uf, e.municipio,
               e.cnae_fiscal_principal, c.razao_social
        FROM cnpj.estabelecimentos e TABLESAMPLE SYSTEM (0.2) REPEATABLE (7)
        LEFT JOIN cnpj.empresas c ON c.release = e.release AND c.cnpj_basico = e.cnpj_basico
        WHERE e.release = %(release)s LIMIT 2000
    """,
    "partners": """
        SELECT cpf_cnpj_socio FROM cnpj.socios TABLESAMPLE SYSTEM (0.2) REPEATABLE (7)
        WHERE release = %(release)s AND cpf_cnpj_socio <> '' LIMIT 500
    """,
}


def _words(connection: psycopg.Connection, name: str | None) -> list[str]:
    if not name:
        return []
    row = connection.execute("SELECT cnpj.search_words(%s)", (name,)).fetchone()
    return list(row[0]) if row and row[0] else []


def _kinds(connection: psycopg.Connection, release: str, n: int) -> dict[str, list[SearchFilters]]:
    """`n` filters of each kind, values drawn from a sample of the release's rows."""
    rng = random.Random(7)
    establishments = _sample(connection, SAMPLES["establishments"], release)
    partners = [p for (p,) in _sample(connection, SAMPLES["partners"], release)]
    picked = rng.sample(establishments, min(n, len(establishments)))
    named = [(row, _words(connection, row[6])) for row in establishments]
    named = [(row, words) for row, words in named if len(words) >= 2]
    two = rng.sample(named, min(n, len(named)))
    return {
        "uf + cnae": [SearchFilters(uf=(r[3],), cnae=(r[5],)) for r in picked],
        "municipio": [SearchFilters(municipio=(r[4],)) for r in picked],
        "name, 1 word": [SearchFilters(name=rng.choice(w)) for _, w in two],
        "name, 2 words": [
            SearchFilters(name=" ".join(w[i : i + 2]))
            for _, w in two
            for i in [rng.randrange(len(w) - 1)]
        ],
        "name + uf": [SearchFilters(name=rng.choice(w), uf=(r[3],)) for r, w in two],
        "partner document": [SearchFilters(socio=(p,)) for p in rng.sample(partners, n)],
    }


def _timed_ms(run: Callable[[], object], timeout_ms: float = float("inf")) -> float:
    """The call's wall time; a query cut by statement_timeout counts as the timeout."""
    started = time.perf_counter()
    try:
        run()
    except psycopg.errors.QueryCanceled:
        return timeout_ms
    return (time.perf_counter() - started) * 1000


def _stats(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _reference(connection: psycopg.Connection, release: str, keys: list[tuple]) -> list[float]:
    """A point lookup of one establishment by CNPJ, through its key index."""
    statement = (
        "SELECT * FROM cnpj.estabelecimentos WHERE release = %s AND cnpj_basico = %s "
        "AND cnpj_ordem = %s AND cnpj_dv = %s"
    )
    return [
        _timed_ms(lambda k=k: connection.execute(statement, (release, *k)).fetchall()) for k in keys
    ]


def _export(connection: psycopg.Connection, release: str, filters: SearchFilters) -> None:
    """The CSV export against COPY of the establishments of that UF whose principal CNAE
    is the code or whose secondary list holds it (LIKE over the text column)."""
    sink = io.StringIO()
    started = time.perf_counter()
    count = write_csv(stream_rows(connection, filters, release), sink, None)
    seconds = time.perf_counter() - started
    copy = sql.SQL(
        "COPY (SELECT * FROM cnpj.estabelecimentos WHERE release = {} AND uf = {} AND "
        "(cnae_fiscal_principal = {c} OR cnae_fiscal_secundaria LIKE {like})) TO STDOUT"
    ).format(
        sql.Literal(release),
        sql.Literal(filters.uf[0]),
        c=sql.Literal(filters.cnae[0]),
        like=sql.Literal(f"%{filters.cnae[0]}%"),
    )
    started = time.perf_counter()
    copied = 0
    with connection.cursor() as cursor, cursor.copy(copy) as stream:
        for _ in stream.rows():
            copied += 1
    copy_seconds = time.perf_counter() - started
    rate, copy_rate = count / seconds, copied / max(copy_seconds, 1e-9)
    print(
        f"\nCSV export of {filters.uf[0]} + CNAE {filters.cnae[0]}: {count:,} rows in "
        f"{seconds:.2f} s = {rate:,.0f} rows/s; reference COPY of the UF's establishments "
        f"with the code "
        f"{copied:,} rows in {copy_seconds:.2f} s = {copy_rate:,.0f} rows/s; "
        f"ratio {rate / copy_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.01, help="share of a real release")
    parser.add_argument("--release", default="2026-10", help="release to reuse or load")
    parser.add_argument("--queries", type=int, default=60, help="queries of each kind (>= 50)")
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the indexes")
    parser.add_argument("--timeout-ms", type=int, default=10_000, help="a query's cut-off")
    args = parser.parse_args()
    server = server_url()
    print(f"PostgreSQL: {server.redacted()}")
    with psycopg.connect(server.url, autocommit=True) as connection:
        if not _loaded(connection, args.release):
            landing = default_landing_dir()
            rows = companies_at_scale(args.scale)
            print(f"writing {args.release} at scale {args.scale} ({rows:,} companies)")
            write_release(args.release, rows, landing, seed=1)
            if load_release(args.release, landing) != 0:
                raise SystemExit("the load failed")
        else:
            print(f"reusing the loaded release {args.release} (scale not checked: as loaded)")
        if args.rebuild:
            _drop_search_indexes(connection, args.release)
        release_bytes = _release_bytes(connection, args.release)
    built = build_search_indexes(server.url, args.release, lambda _: None)
    print(f"\n{'index':<52} {'build s':>8} {'MiB':>8}")
    for index in built:
        seconds = f"{index.seconds:8.1f}" if index.built else f"{'(there)':>8}"
        print(f"{index.name:<52} {seconds} {index.bytes / 2**20:8,.0f}")
    total = sum(index.bytes for index in built)
    print(
        f"search indexes: {total / 2**30:.2f} GiB, {100 * total / max(release_bytes, 1):.0f}% "
        f"on top of the release's {release_bytes / 2**30:.2f} GiB of tables and their indexes"
    )
    with psycopg.connect(server.url, autocommit=True) as connection:
        kinds = _kinds(connection, args.release, args.queries)
        keys = [
            r[:3]
            for r in _sample(connection, SAMPLES["establishments"], args.release)[: args.queries]
        ]
        reference = _reference(connection, args.release, keys)
        connection.execute(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(args.timeout_ms))
        )
        ref_median, ref_p95 = _stats(reference)
        print(f"\n{'query kind':<18} {'n':>4} {'median ms':>10} {'p95 ms':>8} {'ratio':>7}  target")
        print(
            f"{'point lookup':<18} {len(reference):>4} {ref_median:10.1f} {ref_p95:8.1f} {1:7.1f}"
        )
        for kind, filters in kinds.items():
            latencies = [
                _timed_ms(
                    lambda f=f: search_page(connection, f, 20, None, args.release), args.timeout_ms
                )
                for f in filters
            ]
            median, p95 = _stats(latencies)
            met = "ok" if median <= TARGET_MEDIAN_MS and p95 <= TARGET_P95_MS else "MISSED"
            cut = sum(1 for ms in latencies if ms >= args.timeout_ms)
            met += f" ({cut} cut at {args.timeout_ms / 1000:.0f} s)" if cut else ""
            print(
                f"{kind:<18} {len(latencies):>4} {median:10.1f} {p95:8.1f} "
                f"{median / ref_median:7.1f}  {met}"
            )
        counts = connection.execute(
            "SELECT uf, cnae_fiscal_principal FROM cnpj.estabelecimentos "
            "TABLESAMPLE SYSTEM (0.2) REPEATABLE (7) WHERE release = %s "
            "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1",
            (args.release,),
        ).fetchone()
        assert counts is not None
        connection.execute("SET statement_timeout = 0")
        _export(connection, args.release, SearchFilters(uf=(counts[0],), cnae=(counts[1],)))
    print("(a shared machine: compare ratios, not milliseconds)")


if __name__ == "__main__":
    main()
