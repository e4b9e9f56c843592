"""Downloading a release's zips into the landing folder, in parallel, safely and resumably.

Each zip is a FileDownload of its own (file_download.py: .part, Range, verify, rename);
here they share one gate on the streams that run at once, narrowed while the share
stalls them, and one meter, so every progress line shows the whole download. A file
that fails does not stop the others: every failure is reported together at the end,
and the files already in place stay for the next run.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from cnpj_assets.source.client import ShareClient
from cnpj_assets.source.file_download import (
    DownloadError,
    FileDownload,
    FileOutcome,
    Log,
    ReleaseDownload,
)
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.meter import DownloadMeter
from cnpj_assets.source.settings import DownloadSettings
from cnpj_assets.source.streams import StreamGate

__all__ = [
    "DownloadError",
    "DownloadSettings",
    "FileOutcome",
    "download_release",
]


def _download_file(release: ReleaseDownload, remote: RemoteFile) -> FileOutcome:
    return FileDownload(release, remote).run()


def download_release(
    client: ShareClient,
    files: Sequence[RemoteFile],
    folder: Path,
    settings: DownloadSettings,
    log: Log,
) -> list[FileOutcome]:
    """Download the files into `folder` in parallel; every failure is reported together."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def locked_log(message: str) -> None:
        with lock:
            log(message)

    release = ReleaseDownload(
        client=client,
        folder=folder,
        settings=settings,
        log=locked_log,
        gate=StreamGate(
            settings.min_streams, settings.max_streams, settings.stall_timeout_seconds, locked_log
        ),
        meter=DownloadMeter(files),
    )
    outcomes: list[FileOutcome] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=settings.max_streams) as pool:
        futures = [pool.submit(_download_file, release, f) for f in files]
        for future in as_completed(futures):
            try:
                outcomes.append(future.result())
            except DownloadError as error:
                errors.append(str(error))
                locked_log(f"{error}; {release.status()}")
    if errors:
        raise DownloadError(f"{len(errors)} of {len(files)} files failed: " + "; ".join(errors))
    return sorted(outcomes, key=lambda o: o.name.lower())
