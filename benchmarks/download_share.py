"""The download against a local share that is slow but live, or that stalls.

Usage: python benchmarks/download_share.py --rows 40000 --piece-kb 16 --pace 0.05
       python benchmarks/download_share.py --rows 600 --stalls 2 --stall-timeout 1
Serves a synthetic release from the test share on 127.0.0.1 and downloads it through
the real path. With --pace every file comes in pieces that far apart (a slow server that
never stalls): the longest wait for a piece is what a stall timeout must stay far above.
With --stalls every file stalls that many times: the seconds show what stalls cost with
the given streams. Light: a few MB, I/O bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnpj_assets.source.client import ShareClient  # noqa: E402
from cnpj_assets.source.download import DownloadSettings, download_release  # noqa: E402
from cnpj_assets.synthetic import write_release  # noqa: E402
from cnpj_assets_tests.webdav_server import SHARE_TOKEN, FakeShare, Pace  # noqa: E402

RELEASE = "2026-10"


def arguments() -> argparse.Namespace:
    defaults = DownloadSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--piece-kb", type=int, default=16)
    parser.add_argument("--pace", type=float, help="seconds between pieces (default: no pace)")
    parser.add_argument("--stalls", type=int, default=0, help="stalls of every file")
    parser.add_argument("--stall-timeout", type=float, default=defaults.stall_timeout_seconds)
    parser.add_argument("--min-streams", type=int, default=defaults.min_streams)
    parser.add_argument("--max-streams", type=int, default=defaults.max_streams)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    settings = DownloadSettings(
        min_streams=args.min_streams,
        max_streams=args.max_streams,
        stall_timeout_seconds=args.stall_timeout,
    )
    with tempfile.TemporaryDirectory() as scratch:
        origin, landing = Path(scratch) / "share", Path(scratch) / "landing"
        write_release(release=RELEASE, rows=args.rows, out_dir=origin, seed=1)
        share = FakeShare.from_landing(origin, [RELEASE])
        share.stalls = dict.fromkeys(share.releases[RELEASE], args.stalls)
        if args.pace:
            share.pace = Pace(piece_bytes=args.piece_kb * 1024, seconds=args.pace)
        share.start()
        try:
            client = ShareClient(share.share_url, SHARE_TOKEN, None)
            started = time.monotonic()
            outcomes = download_release(
                client, client.list_files(RELEASE), landing, settings, lambda _: None
            )
            seconds = time.monotonic() - started
        finally:
            share.stop()
    waits = sorted(o.longest_wait_seconds for o in outcomes)
    print(
        f"{len(outcomes)} files, {sum(o.size for o in outcomes) / 1024 / 1024:.1f} MB, "
        f"{args.min_streams}-{args.max_streams} streams, stall timeout {args.stall_timeout:g} s: "
        f"{seconds:.1f} s, {sum(o.stalls for o in outcomes)} stalls, "
        f"{sum(o.resumes for o in outcomes)} resumes"
    )
    print(
        f"longest wait for a piece per file: median {statistics.median(waits):.3f} s, "
        f"max {waits[-1]:.3f} s"
        + (f" (pieces of {args.piece_kb} KB every {args.pace:g} s)" if args.pace else "")
    )


if __name__ == "__main__":
    main()
