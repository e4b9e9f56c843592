"""Where exports go: a local folder or any URL `pyarrow.fs` resolves (`s3://`, `gs://`, ...).

The layout is Hive-style, `table=<t>/release=<r>/part-<n>.<ext>`, so DuckDB, Spark,
Trino and Polars discover the partitions from the paths; each release's manifest sits
under `_manifests/`, a name Spark and Hive skip when they list the folder. Every file
is written through `HashedOutput`, so its sha256 comes from the bytes written, without
reading the file back from object storage.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from cnpj_assets.postgres.server import cnpj_home

URL_VARIABLE = "CNPJ_PARQUET_URL"
MANIFESTS = "_manifests"


def default_url() -> str:
    """`CNPJ_PARQUET_URL`, else `$CNPJ_HOME/parquet`."""
    return os.environ.get(URL_VARIABLE) or str(cnpj_home() / "parquet")


def shown_url(url: str) -> str:
    """The URL without its query (where `pyarrow.fs` URLs may carry keys) nor user info."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


class HashedOutput:
    """A writable file of the destination that hashes and counts what goes through it."""

    def __init__(self, stream: pafs.NativeFile) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        self.bytes += len(data)
        return self._stream.write(data)

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class Destination:
    """A filesystem and the root path of the exports inside it."""

    filesystem: pafs.FileSystem
    root: str
    url: str  # as given: a folder or a URL

    def table_folder(self, table: str, release: str) -> str:
        return f"{self.root}/table={table}/release={release}"

    def manifest_path(self, release: str) -> str:
        return f"{self.root}/{MANIFESTS}/release={release}/manifest.json"

    def relative(self, path: str) -> str:
        """A path as the manifest names it: relative to the root, so a copy stays valid."""
        return path.removeprefix(self.root).lstrip("/")

    def open(self, path: str) -> HashedOutput:
        """A new file (replacing one of the same name), its folder made first."""
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return HashedOutput(self.filesystem.open_output_stream(path))

    def remove_others(self, folder: str, kept: set[str]) -> None:
        """Delete the files of `folder` not in `kept`: an earlier export with more parts."""
        selector = pafs.FileSelector(folder, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File and info.path not in kept:
                self.filesystem.delete_file(info.path)


def resolve(url: str | None = None) -> Destination:
    """The destination of `url` (a folder or a URL), default `default_url()`."""
    url = url or default_url()
    if "://" not in url:
        return Destination(pafs.LocalFileSystem(), str(Path(url).resolve()), url)
    filesystem, root = pafs.FileSystem.from_uri(url)
    return Destination(filesystem, root.rstrip("/"), url)


@dataclass(frozen=True)
class WrittenFile:
    """One file of an export, as the manifest lists it."""

    path: str  # relative to the destination's root
    rows: int
    bytes: int
    sha256: str
    row_groups: int = 0  # Parquet only
    uncompressed_bytes: int = 0  # Parquet only: the row groups' data before compression
