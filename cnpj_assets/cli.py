"""The `cnpj-assets` command line: one sub-command per thing a user does."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import psycopg

from cnpj_assets.landing import ReleaseError, default_landing_dir


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
