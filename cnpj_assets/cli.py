"""The `cnpj-assets` command line: one sub-command per thing a user does."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path


def _fake_release(args: argparse.Namespace) -> int:
    from cnpj_assets.synthetic import write_release

    report = write_release(
        release=args.release,
        rows=args.rows,
        out_dir=Path(args.out),
        seed=args.seed,
        quirks=args.quirks,
    )
    print(report.summary())
    return 0


def _load(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import load_release

    return load_release(args.release, Path(args.landing))


def _demo(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import demo

    return demo(args.rows)


def _db_url(args: argparse.Namespace) -> int:
    from cnpj_assets.postgres.server import server_url

    print(server_url().url)
    return 0


def _ui(args: argparse.Namespace) -> int:
    from cnpj_assets.commands import ui

    return ui(args.port)


def _lineage(args: argparse.Namespace) -> int:
    from cnpj_assets.lineage import run

    return run(args.cnpj, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnpj-assets", description="Load the Receita Federal CNPJ open data into PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fake = commands.add_parser("fake-release", help="write a synthetic release of 37 zips")
    fake.add_argument("--release", required=True, help="release name, YYYY-MM")
    fake.add_argument("--rows", type=int, default=10_000, help="rows of empresas; the others scale")
    fake.add_argument("--out", required=True, help="landing folder; zips go to OUT/RELEASE/")
    fake.add_argument("--seed", type=int, default=0)
    fake.add_argument("--quirks", action="store_true", help="add the real-world quirks")
    fake.set_defaults(handler=_fake_release)

    load = commands.add_parser("load", help="load a release from the landing folder")
    load.add_argument("--release", required=True, help="release name, YYYY-MM")
    load.add_argument("--landing", required=True, help="landing folder holding RELEASE/*.zip")
    load.set_defaults(handler=_load)

    demo = commands.add_parser("demo", help="make a fake release with quirks and load it")
    demo.add_argument("--rows", type=int, default=300_000, help="companies in the fake release")
    demo.set_defaults(handler=_demo)

    db_url = commands.add_parser("db-url", help="print the PostgreSQL URL in use")
    db_url.set_defaults(handler=_db_url)

    ui = commands.add_parser("ui", help="start the Dagster UI on the same instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)

    lineage = commands.add_parser("lineage", help="where every row of a CNPJ came from")
    lineage.add_argument("cnpj", help="14-character CNPJ or 8-character base, punctuated or not")
    lineage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lineage.set_defaults(handler=_lineage)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error that says it all (a right, a URL, a lost server) is one line."""
    from cnpj_assets.one_line_error import OneLineError
    from cnpj_assets.postgres.url import redact

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except OneLineError as error:
        message = str(error)
        for variable in ("CNPJ_DATABASE_URL", "CNPJ_DAGSTER_STORAGE"):
            message = redact(message, os.environ.get(variable, ""))
        print(f"cnpj-assets {args.command}: {message}", file=sys.stderr)
        return 1
    finally:
        # The interpreter's exit would collect every object Dagster and its imports made:
        # 11 s measured after a load on a busy machine, 0.8 s with them frozen. A load
        # stopped by Ctrl-C or SIGTERM must end within seconds.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
