"""The `cnpj-assets` command line: one sub-command per thing a user does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnpj_assets.landing import default_landing_dir


class DefaultsShown(argparse.HelpFormatter):
    """Help that gives each option's default; argparse's own formatter would also print
    `default: None` for the required ones and `default: False` for flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return action.help
        return f"{action.help} (default: {action.default})"


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


def _lineage(args: argparse.Namespace) -> int:
    from cnpj_assets.lineage import run

    return run(args.cnpj, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnpj-assets", description="Load the Receita Federal CNPJ open data into PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=DefaultsShown)

    landing = str(default_landing_dir())

    fake = command("fake-release", "write a synthetic release of 37 zips")
    fake.add_argument("--release", required=True, help="release name, YYYY-MM")
    fake.add_argument("--rows", type=int, default=10_000, help="rows of empresas; the others scale")
    fake.add_argument("--out", required=True, help="landing folder; zips go to OUT/RELEASE/")
    fake.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    fake.add_argument("--quirks", action="store_true", help="add the real-world quirks")
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

    lineage = command("lineage", "where every row of a CNPJ came from")
    lineage.add_argument("cnpj", help="14-character CNPJ or 8-character base, punctuated or not")
    lineage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lineage.set_defaults(handler=_lineage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
