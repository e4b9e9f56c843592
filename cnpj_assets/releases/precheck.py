"""What `cnpj-assets load` checks before it touches Dagster or PostgreSQL.

A release is loaded whole or not at all: a folder with 5 of the 37 zips used to
register its partition, start a run, print pages of stack traces and leave two lookups
attached. The folder is now checked first (complete, every name known, every zip
readable with one member) and a bad one is refused in one line naming what is wrong.
Reading the zips' directories costs milliseconds; their CRCs are checked as they load.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from cnpj_assets.landing import Release, ReleaseError, discover_release
from cnpj_assets.specs import TABLES

MAX_NAMES = 5


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise ReleaseError(f"{path}: not a readable zip ({error})") from error
    if len(members) != 1:
        raise ReleaseError(f"{path}: {len(members)} members; a release zip holds one CSV")


def checked_release(landing: Path, release: str) -> Release:
    """The release, if its folder holds all 37 readable zips; else ReleaseError, one line."""
    found = discover_release(landing, release)
    expected = sum(spec.file_count for spec in TABLES.values())
    if not found.files:
        raise ReleaseError(f"release folder {found.folder} holds no zip; a release has {expected}")
    missing = found.missing_files()
    if missing:
        raise ReleaseError(
            f"release {release} in {found.folder} is incomplete: {expected - len(missing)} of "
            f"{expected} zips, missing {_names(missing)}"
        )
    for file in found.files:
        _check_zip(file.path)
    return found
