"""The `cnpj-assets` command line: one sub-command per thing a user does."""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
