"""The `cnpj-assets` command line: one sub-command per thing a user does."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import psycopg

from cnpj_assets.export.formats import FORMATS
from cnpj_assets.landing import ReleaseError, default_landing_dir
from cnpj_assets.specs import TABLES


class DefaultsShown(argparse.HelpFormatter):
    """Help that gives each option's default; argparse's own formatter would also print
    `default: None` for the required ones and `default: False` for flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return action.help
        return f"{action.help} (default: {action.default})"


def _fake_release(args: argparse.Namespace) -> int:
    from cnpj_assets.synthetic import write_release
    from cnpj_assets.synthetic.processes import default_workers
    from cnpj_assets.synthetic.scale import companies_at_scale

    if args.previous:
        from cnpj_assets.synthetic.evolve import evolve_release

        changes = evolve_release(Path(args.previous), args.release, Path(args.out), args.seed)
        print(
            f"{args.release}: {len(changes)} changes since {Path(args.previous).name}, in "
            f"{Path(args.out) / args.release / 'changes.json'}"
        )
        return 0

    rows = args.rows if args.scale is None else companies_at_scale(args.scale)
    workers = args.workers or default_workers(rows)
    started = time.perf_counter()
    report = write_release(
        release=args.release,
        rows=rows,
        out_dir=Path(args.out),
        seed=args.seed,
        quirks=args.quirks,
        workers=workers,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    seconds = time.perf_counter() - started
    print(report.summary())
    written = sum(file.records for file in report.files)
    print(
        f"wrote {written:,} records in {seconds:.1f} s with {workers} process(es): "
        f"{written / seconds:,.0f} records/s"
    )
    return 0


def _fake_regime(args: argparse.Namespace) -> int:
    from cnpj_assets.synthetic.regime import write_regime_folder

    started = time.perf_counter()
    written = write_regime_folder(
        Path(args.out),
        args.snapshot,
        args.rows,
        args.companies,
        args.seed,
        args.split_presumido,
        args.upper_header,
    )
    print(
        f"{written.folder}: {written.rows:,} rows in {len(written.zips)} zips "
        f"({', '.join(written.zips)}) in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _regime(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import print_server_note
    from cnpj_assets.regime.commands import download_snapshot, load_snapshot

    if args.action == "load":
        if not args.snapshot:
            raise SystemExit("cnpj-assets regime load needs --snapshot YYYY-MM-DD")
        status = load_snapshot(args.snapshot, Path(args.landing))
    else:
        status = download_snapshot(Path(args.landing))
    print_server_note()
    return status


def _load(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import load_release, print_server_note

    status = load_release(args.release, Path(args.landing))
    print_server_note()
    return status


def _download(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import download, print_server_note

    status = download(args.release, Path(args.landing))
    print_server_note()
    return status


def _demo(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import demo, print_server_note

    status = demo(args.rows)
    print_server_note()
    return status


def _db_url(args: argparse.Namespace) -> int:
    from cnpj_assets.postgres.server import server_url

    print(server_url().url)
    return 0


def _env(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import env

    return env()


def _add_partition(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import add_partitions

    return add_partitions(args.releases)


def _server(args: argparse.Namespace) -> int:
    from cnpj_assets.postgres import control

    return control.status() if args.action == "status" else control.stop()


def _ui(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import ui

    return ui(args.port)


def _history(args: argparse.Namespace) -> int:
    from cnpj_assets.releases.history import run

    return run(args.cnpj, as_json=args.json)


def _releases(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import releases

    return releases(as_json=args.json)


def _lineage(args: argparse.Namespace) -> int:
    from cnpj_assets.lineage import run

    return run(args.cnpj, as_json=args.json)


def _export(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import export

    return export(args.release, args.table, args.format, args.out, args.force)


def _serve(args: argparse.Namespace) -> int:
    from cnpj_assets.api.serve import serve

    return serve(args.host, args.port, args.workers)


def _search(args: argparse.Namespace) -> int:
    from cnpj_assets.read.search import SearchFilters
    from cnpj_assets.read.search_command import run

    filters = SearchFilters(
        name=args.name,
        uf=tuple(args.uf),
        municipio=tuple(args.municipio),
        cnae=tuple(args.cnae),
        natureza=tuple(args.natureza),
        situacao=tuple(args.situacao),
        socio=tuple(args.socio),
        matriz=args.matriz,
    )
    return run(filters, args.limit, args.cursor, args.format, args.out, args.release)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnpj-assets", description="Load the Receita Federal CNPJ open data into PostgreSQL."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=DefaultsShown)

    landing = str(default_landing_dir())

    fake = command("fake-release", "write a synthetic release of 37 zips")
    fake.add_argument("--release", required=True, help="release name, YYYY-MM")
    size = fake.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=10_000, help="rows of empresas; the others scale")
    size.add_argument(
        "--scale", type=float, help="share of a real release's rows (1.0: ~210 M rows in all)"
    )
    fake.add_argument("--out", required=True, help="landing folder; zips go to OUT/RELEASE/")
    fake.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    fake.add_argument("--quirks", action="store_true", help="add the real-world quirks")
    fake.add_argument(
        "--workers", type=int, help="processes writing zips (default: one per core from 100 k rows)"
    )
    fake.add_argument(
        "--previous",
        help="a release folder (made without --quirks) to evolve into the next month; "
        "the changes go to OUT/RELEASE/changes.json",
    )
    fake.set_defaults(handler=_fake_release)

    regime_fake = command(
        "fake-regime",
        "write a synthetic regime_tributario folder (OUT/regime_tributario/SNAPSHOT/)",
    )
    regime_fake.add_argument("--snapshot", required=True, help="snapshot name, YYYY-MM-DD")
    regime_fake.add_argument("--rows", type=int, default=10_000, help="rows in all the zips")
    regime_fake.add_argument(
        "--companies",
        type=int,
        default=10_000,
        help="head offices drawn from; the --rows of a fake-release of the same --seed",
    )
    regime_fake.add_argument("--out", required=True, help="landing folder")
    regime_fake.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    regime_fake.add_argument(
        "--split-presumido", type=int, default=2, help="parts of Lucro Presumido (1: one zip)"
    )
    regime_fake.add_argument(
        "--upper-header", action="store_true", help="write the header row in upper case"
    )
    regime_fake.set_defaults(handler=_fake_regime)

    regime = command(
        "regime",
        "load a regime_tributario snapshot from the landing folder, or download the share's "
        "current one and load it",
    )
    regime.add_argument("action", choices=["load", "download"], help="what to do")
    regime.add_argument("--snapshot", help="snapshot to load, YYYY-MM-DD (load only)")
    regime.add_argument(
        "--landing", default=landing, help="landing folder holding regime_tributario/SNAPSHOT/"
    )
    regime.set_defaults(handler=_regime)

    load = command("load", "load a release from the landing folder (the load_release job)")
    load.add_argument("--release", required=True, help="release name, YYYY-MM")
    load.add_argument("--landing", default=landing, help="landing folder holding RELEASE/*.zip")
    load.set_defaults(handler=_load)

    download = command("download", "download a release from the Receita Federal share")
    download.add_argument("--release", required=True, help="release name, YYYY-MM")
    download.add_argument("--landing", default=landing, help="landing folder; zips go to RELEASE/")
    download.set_defaults(handler=_download)

    demo = command("demo", "make a fake release with quirks and load it")
    demo.add_argument("--rows", type=int, default=300_000, help="companies in the fake release")
    demo.set_defaults(handler=_demo)

    db_url = command("db-url", "print the PostgreSQL URL in use")
    db_url.set_defaults(handler=_db_url)

    env = command("env", 'print the exports for Dagster\'s CLI: eval "$(cnpj-assets env)"')
    env.set_defaults(handler=_env)

    partition = command("add-partition", "add cnpj_release partitions for Dagster's CLI")
    partition.add_argument("releases", nargs="+", metavar="YYYY-MM", help="release names")
    partition.set_defaults(handler=_add_partition)

    server = command("server", "see or stop the embedded PostgreSQL (it outlives each command)")
    server.add_argument("action", choices=["status", "stop"], help="what to do")
    server.set_defaults(handler=_server)

    ui = command("ui", "start the Dagster UI on the same instance")
    ui.add_argument("--port", type=int, default=3000, help="port of the UI on 127.0.0.1")
    ui.set_defaults(handler=_ui)

    history = command("history", "a company or establishment across releases, with its changes")
    history.add_argument("cnpj", help="14-character CNPJ or 8-character base, punctuated or not")
    history.add_argument("--json", action="store_true", help="print JSON instead of text")
    history.set_defaults(handler=_history)

    releases = command("releases", "every release: published or why not, rows, size, times")
    releases.add_argument("--json", action="store_true", help="print JSON instead of lines")
    releases.set_defaults(handler=_releases)

    lineage = command("lineage", "where every row of a CNPJ came from")
    lineage.add_argument("cnpj", help="14-character CNPJ or 8-character base, punctuated or not")
    lineage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lineage.set_defaults(handler=_lineage)

    export = command("export", "write whole tables of a release as Parquet or CSV files")
    export.add_argument("--release", required=True, help="release name, YYYY-MM")
    export.add_argument(
        "--table", action="append", choices=list(TABLES), help="a table (repeat; default all)"
    )
    export.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="file format")
    export.add_argument(
        "--out", required=True, help="a folder, or a URL pyarrow.fs resolves (s3://bucket/path)"
    )
    export.add_argument("--force", action="store_true", help="export a release not published")
    export.set_defaults(handler=_export)

    serve = command("serve", "serve the published release over HTTP (minha-receita's shape)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.set_defaults(handler=_serve)

    search = command(
        "search", "find establishments by name, place, activity, partner (docs/search.md)"
    )
    search.add_argument(
        "--name", help="every word in the razao social, or every word in the nome fantasia"
    )
    for flag, what in (
        ("uf", "state, e.g. SP"),
        ("municipio", "RFB municipality code"),
        ("cnae", "activity code, principal or secondary"),
        ("natureza", "legal nature code"),
        ("situacao", "status code, e.g. 02 (ATIVA)"),
        ("socio", "partner CPF, CNPJ or name"),
    ):
        search.add_argument(f"--{flag}", action="append", default=[], help=f"{what}; repeat to OR")
    search.add_argument("--matriz", action="store_true", help="head offices only")
    search.add_argument("--limit", type=int, default=20, help="rows of a page (table, json)")
    search.add_argument("--cursor", help="continue after the page that printed this cursor")
    search.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output; csv writes every row",
    )
    search.add_argument("--out", help="write to this file instead of stdout")
    search.add_argument("--release", help="read this release (YYYY-MM), not the published one")
    search.set_defaults(handler=_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error that says it all is one line on stderr, the traceback
    only under --debug: a refused release folder or an unreachable database (exit 2), a
    missing right, a malformed URL or a lost server (exit 1)."""
    from cnpj_assets.one_line_error import OneLineError
    from cnpj_assets.postgres.url import redact

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (OneLineError, ReleaseError, psycopg.OperationalError) as error:
        if args.debug:
            raise
        message = str(error).strip()
        if not isinstance(error, OneLineError):
            message = message.splitlines()[0] if message else type(error).__name__
        for variable in ("CNPJ_DATABASE_URL", "CNPJ_DAGSTER_STORAGE"):
            message = redact(message, os.environ.get(variable, ""))
        print(f"cnpj-assets {args.command}: {message}", file=sys.stderr)
        return 1 if isinstance(error, OneLineError) else 2
    finally:
        # The interpreter's exit would collect every object Dagster and its imports made,
        # for seconds; a load stopped by Ctrl-C or SIGTERM must end within seconds.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
