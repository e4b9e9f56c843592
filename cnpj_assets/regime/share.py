"""The folder on the share: its snapshot (named from its modification date) and its zips,
downloaded by the monthly release's downloader (Range resumes, stalls, size and CRC)."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from cnpj_assets.regime.landing import snapshot_folder
from cnpj_assets.regime.spec import FOLDER, REGIMES, regime_of
from cnpj_assets.snapshot import SUCCESS_MARKER
from cnpj_assets.source.client import ShareClient, SourceError
from cnpj_assets.source.download import FileOutcome, download_release
from cnpj_assets.source.file_download import Log
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.settings import DownloadSettings


@dataclass(frozen=True)
class FolderListing:
    """What the share shows of the folder: its snapshot name and the zips that load."""

    snapshot: str
    modified: str
    files: tuple[RemoteFile, ...]


def snapshot_name(modified: str) -> str:
    """YYYY-MM-DD (UTC) of an HTTP date such as `Tue, 14 Jan 2025 10:00:00 GMT`."""
    try:
        return parsedate_to_datetime(modified).date().isoformat()
    except (TypeError, ValueError) as error:
        raise SourceError(
            f"the folder's modification date {modified!r} is not an HTTP date"
        ) from error


def list_folder(client: ShareClient, folder: str = FOLDER) -> FolderListing:
    """The folder's snapshot and its regime zips; fails naming a regime that has none."""
    entry, listed = client.list_folder(folder)
    if not entry.modified:
        raise SourceError(f"{entry.url}: the share gives no modification date for the folder")
    files = tuple(f for f in listed if regime_of(f.name) is not None)
    missing = [r for r in REGIMES if not any(regime_of(f.name) == r for f in files)]
    if missing:
        names = ", ".join(f.name for f in listed) or "no zip"
        raise SourceError(f"{entry.url} lists {names}: no zip for {', '.join(missing)}")
    return FolderListing(snapshot_name(entry.modified), entry.modified, files)


def download_snapshot(
    client: ShareClient,
    listing: FolderListing,
    landing: Path,
    settings: DownloadSettings,
    log: Log,
) -> list[FileOutcome]:
    """Download the listed zips into the snapshot's landing folder, then mark it complete."""
    folder = snapshot_folder(landing, listing.snapshot)
    outcomes = download_release(client, listing.files, folder, settings, log)
    (folder / SUCCESS_MARKER).write_text("\n".join(o.name for o in outcomes) + "\n")
    return outcomes
