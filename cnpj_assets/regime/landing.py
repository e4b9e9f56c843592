"""The folder's snapshots in the landing zone: `<landing>/regime_tributario/<YYYY-MM-DD>/`.

A snapshot is named after the day the share last modified the folder (it changes about
once a year). Its zips are recognised by pattern, not by exact name; documents beside
them (the data dictionary, the layout) are left alone, an unknown zip is an error that
names it, and so is a regime without any zip.
"""

from __future__ import annotations

import re
from pathlib import Path

from cnpj_assets.landing import IGNORED_NAMES, ReleaseError, ReleaseFile
from cnpj_assets.regime.spec import FOLDER, REGIME_TRIBUTARIO, REGIMES, regime_of

SNAPSHOT_PATTERN = re.compile(r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")


def validate_snapshot(snapshot: str) -> str:
    """Refuse anything but YYYY-MM-DD: snapshot names end up in paths and table names."""
    if not SNAPSHOT_PATTERN.fullmatch(snapshot):
        raise ReleaseError(f"snapshot {snapshot!r} is not a day like 2025-01-14 (YYYY-MM-DD)")
    return snapshot


def snapshot_folder(landing: Path, snapshot: str) -> Path:
    return Path(landing) / FOLDER / validate_snapshot(snapshot)


def discover_snapshot(landing: Path, snapshot: str) -> tuple[ReleaseFile, ...]:
    """The snapshot's zips, each regime's parts in name order."""
    folder = snapshot_folder(landing, snapshot)
    if not folder.is_dir():
        raise ReleaseError(f"snapshot folder {folder} does not exist")
    files: list[ReleaseFile] = []
    found: set[str] = set()
    for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if path.name in IGNORED_NAMES or path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() != ".zip":
            continue  # the dictionary and the layout documents
        regime = regime_of(path.name)
        if regime is None:
            raise ReleaseError(
                f"{path}: unknown zip; its name matches none of {', '.join(REGIMES)}"
            )
        found.add(regime)
        stat = path.stat()
        files.append(ReleaseFile(REGIME_TRIBUTARIO.name, path, stat.st_size, stat.st_mtime))
    missing = [regime for regime in REGIMES if regime not in found]
    if missing:
        raise ReleaseError(f"snapshot {snapshot} in {folder}: no zip for {', '.join(missing)}")
    return tuple(files)


def list_snapshots(landing: Path) -> list[str]:
    """Snapshot folders in the landing zone, oldest first."""
    root = Path(landing) / FOLDER
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and SNAPSHOT_PATTERN.fullmatch(p.name)
    )
