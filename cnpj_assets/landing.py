"""Release discovery: a landing folder `<landing>/<YYYY-MM>/*.zip` becomes a Release.

The table of a zip is recognised by the zip's name first (mirrors rename the CSV member,
rarely the zip) and by the member's suffix second. Anything unexpected is an error that
names the file, so a half-copied or polluted folder never loads silently.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cnpj_assets.postgres.server import cnpj_home
from cnpj_assets.specs import TABLES, TableSpec, table_for_member, table_for_zip

RELEASE_PATTERN = re.compile(r"(?P<year>20[0-9]{2})-(?P<month>0[1-9]|1[0-2])")
IGNORED_NAMES = frozenset({"_SUCCESS", "quirks.json", "changes.json"})


def default_landing_dir() -> Path:
    """Where releases land unless told else: $CNPJ_LANDING_DIR, or $CNPJ_HOME/landing."""
    return Path(os.environ.get("CNPJ_LANDING_DIR") or cnpj_home() / "landing")


class ReleaseError(ValueError):
    """The landing folder does not hold a usable release; the message says why."""


def validate_release_name(release: str) -> str:
    """Refuse anything but YYYY-MM: release names end up in paths and table names."""
    if not RELEASE_PATTERN.fullmatch(release):
        raise ReleaseError(f"release {release!r} is not a month like 2026-10 (YYYY-MM)")
    return release


@dataclass(frozen=True)
class ReleaseFile:
    """One zip of a release, as found on disk."""

    table: str
    path: Path
    size: int
    mtime: float

    @property
    def zip_name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Release:
    """The zips of one monthly release, grouped by table."""

    name: str
    folder: Path
    files: tuple[ReleaseFile, ...]

    def files_for(self, table: str) -> tuple[ReleaseFile, ...]:
        """The table's zips in file-number order; every expected zip must be present."""
        found = sorted(
            (f for f in self.files if f.table == table), key=lambda f: f.zip_name.lower()
        )
        if len(found) < TABLES[table].file_count:
            present = {f.zip_name.lower() for f in found}
            missing = [n for n in TABLES[table].zip_names() if n.lower() not in present]
            raise ReleaseError(
                f"release {self.name} in {self.folder}: {table} is missing {', '.join(missing)}"
            )
        return tuple(found)

    def missing_files(self) -> list[str]:
        """Zip names a complete release has and this folder lacks."""
        present = {f.zip_name.lower() for f in self.files}
        return [
            name
            for spec in TABLES.values()
            for name in spec.zip_names()
            if name.lower() not in present
        ]

    @property
    def is_complete(self) -> bool:
        return not self.missing_files()


def _table_of(path: Path) -> TableSpec:
    spec = table_for_zip(path.name)
    if spec is not None:
        return spec
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise ReleaseError(f"{path}: not a readable zip ({error})") from error
    for member in members:
        spec = table_for_member(member)
        if spec is not None:
            return spec
    raise ReleaseError(
        f"{path}: unknown file; neither its name nor its members ({', '.join(members) or 'none'}) "
        "match a CNPJ table"
    )


def discover_release(landing: Path, release: str) -> Release:
    """List a release's zips with size and mtime; unknown files are an error naming them."""
    validate_release_name(release)
    folder = Path(landing) / release
    if not folder.is_dir():
        raise ReleaseError(f"release folder {folder} does not exist")
    files = []
    for path in sorted(folder.iterdir()):
        if path.name in IGNORED_NAMES or path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() != ".zip":
            raise ReleaseError(f"{path}: unexpected file in a release folder (not a .zip)")
        stat = path.stat()
        files.append(ReleaseFile(_table_of(path).name, path, stat.st_size, stat.st_mtime))
    return Release(release, folder, tuple(files))


def list_releases(landing: Path) -> list[str]:
    """Release folders under the landing folder, oldest first."""
    landing = Path(landing)
    if not landing.is_dir():
        return []
    return sorted(
        p.name for p in landing.iterdir() if p.is_dir() and RELEASE_PATTERN.fullmatch(p.name)
    )
