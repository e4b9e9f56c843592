"""Downloading a release's zips into the landing folder, safely and resumably.

A zip is written to a hidden `.NAME.zip.part` beside its final place (the landing
discovery ignores dot files), resumed with HTTP Range after a dropped connection or a
stall (no byte for the stall timeout), and renamed into place only once its size matches
the listing and every member's CRC checks out. So a zip under its real name is always
whole, and the landing sensor can trust it. A file that stalls too often or runs past its
deadline fails on its own, naming what happened; its .part stays for the next run.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cnpj_assets.source.client import HttpStatusError, ShareClient
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.patience import FilePatience

Log = Callable[[str], None]
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MB = 1024 * 1024


class DownloadError(RuntimeError):
    """A file could not be downloaded whole; the message names the file(s) and why."""


class _CorruptDownload(Exception):
    """The bytes arrived but are not the file: wrong size or a bad zip."""


class _IncompleteDownload(OSError):
    """The connection ended before the last byte: resumable."""


@dataclass(frozen=True)
class DownloadSettings:
    """How hard, how wide and how patiently to download.

    The stall timeout is the longest silence a live transfer is granted: far above the
    gaps a slow but live server shows, far below the 60 s socket timeout that used to
    notice a stall (README, "Stalls", for the measurement). The stall budget and the
    deadline are sized for the largest zip (Estabelecimentos0, ~1.3 GB) on a share that
    stalls every few dozen MB: ~50 stalls, and hours at a slow stream's rate.
    """

    threads: int = 4
    stall_timeout_seconds: float = 20.0
    max_stalls_per_file: int = 100
    file_deadline_seconds: float = 3 * 3600.0
    max_attempts: int = 6
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    chunk_bytes: int = MB
    progress_every_bytes: int = 256 * MB


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one zip."""

    name: str
    size: int
    fetched_bytes: int
    skipped: bool
    attempts: int
    seconds: float
    stalls: int
    resumes: int


def part_path(folder: Path, name: str) -> Path:
    """Where a zip is written until it is verified."""
    return folder / f".{name}.part"


def _verify(path: Path, remote: RemoteFile) -> None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise _CorruptDownload(f"{size:,} bytes, the listing says {remote.size:,}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise _CorruptDownload(f"not a readable zip ({error})") from error
    if bad_member is not None:
        raise _CorruptDownload(f"CRC check failed for member {bad_member}")


def _is_complete(dest: Path, remote: RemoteFile) -> bool:
    """A file in place is complete when its size matches (or, with no size, it is a zip)."""
    if not dest.is_file():
        return False
    if remote.size is not None:
        return dest.stat().st_size == remote.size
    return zipfile.is_zipfile(dest)


class _FileDownload:
    """One zip: fetch into the .part file, resume, verify, rename."""

    def __init__(
        self,
        client: ShareClient,
        remote: RemoteFile,
        folder: Path,
        settings: DownloadSettings,
        log: Log,
    ) -> None:
        self.client, self.remote, self.settings, self.log = client, remote, settings, log
        self.dest = folder / remote.name
        self.part = part_path(folder, remote.name)
        self.patience = FilePatience(settings.max_stalls_per_file, settings.file_deadline_seconds)
        self.fetched = self.resumes = 0

    def run(self) -> FileOutcome:
        started = time.monotonic()
        if _is_complete(self.dest, self.remote):
            self.log(f"{self.remote.name}: already complete, skipped")
            return self._outcome(self.dest.stat().st_size, skipped=True, attempts=0, seconds=0.0)
        attempts = errors = refusals = 0
        while True:
            self._give_up_if_out_of_patience()
            attempts += 1
            try:
                with self.patience.spending():
                    self._fetch()
                    _verify(self.part, self.remote)
            except _CorruptDownload as error:
                self.part.unlink(missing_ok=True)
                refusals += 1
                if refusals >= 2:
                    raise DownloadError(
                        f"{self.remote.name}: refused, downloaded twice and both were bad: {error}"
                    ) from error
                self.log(f"{self.remote.name}: {error}; downloading it again from the start")
                continue
            except TimeoutError:
                self._after_stall()
                continue
            except (OSError, http.client.HTTPException) as error:
                if isinstance(error, HttpStatusError) and error.code not in RETRYABLE_STATUSES:
                    raise DownloadError(f"{self.remote.name}: {error}") from error
                errors += 1
                if errors >= self.settings.max_attempts:
                    raise DownloadError(
                        f"{self.remote.name}: gave up after {errors} attempts failed: {error}"
                    ) from error
                self._back_off(errors, error)
                continue
            os.replace(self.part, self.dest)
            seconds = time.monotonic() - started
            size = self.dest.stat().st_size
            self.log(
                f"{self.remote.name}: {size / MB:,.1f} MB in place after {attempts} attempt(s), "
                f"{self.patience.stalls} stall(s), {seconds:.1f} s "
                f"({self.fetched / MB / max(seconds, 1e-6):,.1f} MB/s), CRC ok"
            )
            return self._outcome(size, skipped=False, attempts=attempts, seconds=seconds)

    def _outcome(self, size: int, skipped: bool, attempts: int, seconds: float) -> FileOutcome:
        return FileOutcome(
            name=self.remote.name,
            size=size,
            fetched_bytes=self.fetched,
            skipped=skipped,
            attempts=attempts,
            seconds=seconds,
            stalls=self.patience.stalls,
            resumes=self.resumes,
        )

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _after_stall(self) -> None:
        """No byte for the stall timeout: resume at once from the .part, while patience lasts.

        No back-off: the silence already cost a stall timeout, and a stalled stream says
        nothing about the share's health that waiting longer would fix.
        """
        if self.patience.time_left() > 0:  # a read cut short by the deadline is no stall
            self.patience.stalled()
        self._give_up_if_out_of_patience()
        self.log(
            f"{self.remote.name}: no byte for {self.settings.stall_timeout_seconds:g} s, "
            f"stall {self.patience.stalls} of at most {self.settings.max_stalls_per_file}; "
            f"resuming at byte {self._have():,}"
        )

    def _give_up_if_out_of_patience(self) -> None:
        reason = self.patience.exhausted()
        if reason is None:
            return
        size = f"{self.remote.size:,}" if self.remote.size is not None else "an unknown size"
        raise DownloadError(
            f"{self.remote.name}: given up, {reason}: {self.patience.stalls} stall(s) of "
            f"{self.settings.stall_timeout_seconds:g} s without a byte in "
            f"{self.patience.spent():.1f} s, {self._have():,} of {size} bytes received "
            f"(kept in {self.part.name}: the next run resumes from them)"
        )

    def _back_off(self, errors: int, error: Exception) -> None:
        delay = min(
            self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** (errors - 1)
        )
        self.log(
            f"{self.remote.name}: {error}; attempt {errors + 1} of "
            f"{self.settings.max_attempts} in {delay:.1f} s, resuming at byte {self._have():,}"
        )
        with self.patience.spending():
            time.sleep(min(delay, max(0.0, self.patience.time_left())))

    def _fetch(self) -> None:
        """Append the missing bytes to the .part file; raise if the connection ends early."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        if self.remote.size is not None and offset >= self.remote.size:
            if offset > self.remote.size:
                self.part.unlink()
                raise _IncompleteDownload(f"a stale .part of {offset:,} bytes was dropped")
            return
        wait = min(self.settings.stall_timeout_seconds, self.patience.time_left())
        try:
            response = self.client.open(self.remote, offset, timeout=wait)
        except HttpStatusError as error:
            if error.code == 416 and offset:
                self.part.unlink()
                raise _IncompleteDownload("the server refused the resume range") from error
            raise
        with response:
            start, total = self._range_of(response, offset)
            self.resumes += start > 0
            verb = f"resuming at byte {start:,}" if start else "downloading"
            size = f"{total / MB:,.1f} MB" if total is not None else "size unknown"
            self.log(f"{self.remote.name}: {verb} ({size})")
            with self.part.open("r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                self._copy(response, out, start, total)
        have = self.part.stat().st_size
        if total is not None and have < total:
            raise _IncompleteDownload(f"connection ended at byte {have:,} of {total:,}")

    def _range_of(self, response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
        """Where this answer starts and the file's full size, from its status and headers."""
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != offset:
                raise _IncompleteDownload(
                    f"unexpected Content-Range {response.headers.get('Content-Range')!r}"
                )
            total = match.group(3)
            return offset, int(total) if total != "*" else self.remote.size
        if length is not None:
            return 0, int(length)
        return 0, self.remote.size

    def _copy(
        self, response: http.client.HTTPResponse, out: BinaryIO, start: int, total: int | None
    ) -> None:
        """Write each piece as it arrives.

        `read1`, not `read`: `read(n)` waits until it holds n bytes, so a stall in the
        middle of a chunk raised the timeout with the bytes received so far still in its
        hands, and the retry asked again for all of them (a file under a chunk restarted
        at byte 0). `read1` hands over whatever one socket read brought.
        """
        position, next_report = start, start + self.settings.progress_every_bytes
        while chunk := response.read1(self.settings.chunk_bytes):
            out.write(chunk)
            position += len(chunk)
            self.fetched += len(chunk)
            if self.patience.time_left() <= 0:  # bytes that trickle in never time out
                raise TimeoutError(f"deadline passed at byte {position:,}")
            if position >= next_report:
                share = f" ({position / total:.0%})" if total else ""
                self.log(f"{self.remote.name}: {position / MB:,.0f} MB{share}")
                next_report += self.settings.progress_every_bytes


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

    total = sum(f.size or 0 for f in files)
    outcomes: list[FileOutcome] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, settings.threads)) as pool:
        futures = {
            pool.submit(_FileDownload(client, f, folder, settings, locked_log).run): f
            for f in files
        }
        for future in as_completed(futures):
            try:
                outcomes.append(future.result())
            except DownloadError as error:
                errors.append(str(error))
            done = sum(o.size for o in outcomes)
            locked_log(
                f"{len(outcomes)} of {len(files)} files in place, "
                f"{done / MB:,.1f} of {total / MB:,.1f} MB"
            )
    if errors:
        raise DownloadError(f"{len(errors)} of {len(files)} files failed: " + "; ".join(errors))
    return sorted(outcomes, key=lambda o: o.name.lower())
