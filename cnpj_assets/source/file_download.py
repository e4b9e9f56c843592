"""One zip of a release: fetch into its .part file, resume, verify, rename.

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
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from cnpj_assets.source.client import HttpStatusError, ShareClient
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.meter import MB, DownloadMeter, rate
from cnpj_assets.source.patience import FilePatience
from cnpj_assets.source.settings import DownloadSettings
from cnpj_assets.source.streams import StreamGate

Log = Callable[[str], None]
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(RuntimeError):
    """A file could not be downloaded whole; the message names the file(s) and why."""


class _CorruptDownload(Exception):
    """The bytes arrived but are not the file: wrong size or a bad zip."""


class _IncompleteDownload(OSError):
    """The connection ended before the last byte: resumable."""


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
    longest_wait_seconds: float


@dataclass(frozen=True)
class ReleaseDownload:
    """What the files of one release download share: where, how, and the common counts."""

    client: ShareClient
    folder: Path
    settings: DownloadSettings
    log: Log
    gate: StreamGate
    meter: DownloadMeter

    def status(self) -> str:
        return f"{self.meter.summary()}; {self.gate.describe()}"


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


def etag_path(folder: Path, name: str) -> Path:
    """Where the ETag a zip was downloaded with is kept (a dot file: discovery skips it)."""
    return folder / f".{name}.etag"


def _listed_time(remote: RemoteFile) -> float | None:
    try:
        return parsedate_to_datetime(remote.modified).timestamp() if remote.modified else None
    except (TypeError, ValueError):
        return None


def _is_complete(dest: Path, remote: RemoteFile) -> bool:
    """Whether the file in place is the listed version, so it need not be fetched again.

    Its size must match (with no size listed, it must be a zip), and, since a zip can be
    re-published at the same size: the ETag it was downloaded with must be the listed
    one, or, with no ETag to compare (a file copied in by hand), it must be no older
    than the listing's modification time.
    """
    if not dest.is_file():
        return False
    if remote.size is not None and dest.stat().st_size != remote.size:
        return False
    if remote.size is None and not zipfile.is_zipfile(dest):
        return False
    kept = etag_path(dest.parent, dest.name)
    if remote.etag is not None and kept.is_file():
        return kept.read_text() == remote.etag
    listed = _listed_time(remote)
    return listed is None or dest.stat().st_mtime >= listed


class FileDownload:
    """One zip: fetch into the .part file, resume, verify, rename. Made when its turn comes."""

    def __init__(self, release: ReleaseDownload, remote: RemoteFile) -> None:
        self.release, self.remote, self.settings = release, remote, release.settings
        self.dest = release.folder / remote.name
        self.part = part_path(release.folder, remote.name)
        self.patience = FilePatience(
            self.settings.max_stalls_per_file, self.settings.file_deadline_seconds
        )
        self.fetched = self.resumes = 0
        self.longest_wait = 0.0
        self.started = time.monotonic()

    def run(self) -> FileOutcome:
        if _is_complete(self.dest, self.remote):
            self.release.log(f"{self.remote.name}: already complete, skipped")
            size = self.dest.stat().st_size
            self.release.meter.in_place(size)
            return self._outcome(size, skipped=True, attempts=0, seconds=0.0)
        attempts = errors = refusals = 0
        while True:
            self._give_up_if_out_of_patience()
            attempts += 1
            try:
                with self.release.gate.stream(), self.patience.spending():
                    self._fetch()
                with self.patience.spending():
                    _verify(self.part, self.remote)
            except _CorruptDownload as error:
                self.part.unlink(missing_ok=True)
                refusals += 1
                if refusals >= 2:
                    raise DownloadError(
                        f"{self.remote.name}: refused, downloaded twice and both were bad: {error}"
                    ) from error
                self.release.log(
                    f"{self.remote.name}: {error}; downloading it again from the start"
                )
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
            return self._in_place(attempts)

    def _in_place(self, attempts: int) -> FileOutcome:
        kept_etag = etag_path(self.release.folder, self.remote.name)
        kept_etag.unlink(missing_ok=True)
        os.replace(self.part, self.dest)
        if self.remote.etag is not None:
            kept_etag.write_text(self.remote.etag)
        size = self.dest.stat().st_size
        self.release.meter.in_place(size)
        self.release.gate.flowed()
        seconds = time.monotonic() - self.started
        self.release.log(
            f"{self.remote.name}: {size / MB:,.1f} MB in place after {attempts} attempt(s), "
            f"{self.patience.stalls} stall(s), {seconds:.1f} s "
            f"({rate(self.fetched, seconds)}), CRC ok; {self.release.status()}"
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
            longest_wait_seconds=self.longest_wait,
        )

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _after_stall(self) -> None:
        """No byte for the stall timeout: resume at once from the .part, while patience lasts.

        No back-off: the silence already cost a stall timeout, and a stalled stream says
        nothing about the share's health that waiting longer would fix. The gate hears of
        it, so fewer streams run while the share stalls them.
        """
        if self.patience.time_left() > 0:  # a read cut short by the deadline is no stall
            self.patience.stalled()
            self.release.meter.stalled()
        self._give_up_if_out_of_patience()
        self.release.gate.stalled()
        self.release.log(
            f"{self.remote.name}: no byte for {self.settings.stall_timeout_seconds:g} s, "
            f"stall {self.patience.stalls} of at most {self.settings.max_stalls_per_file}; "
            f"resuming at byte {self._have():,}; {self.release.status()}"
        )

    def _give_up_if_out_of_patience(self) -> None:
        reason = self.patience.exhausted()
        if reason is None:
            return
        of_size = f" of {self.remote.size:,}" if self.remote.size is not None else ""
        raise DownloadError(
            f"{self.remote.name}: given up, {reason}: {self.patience.stalls} stall(s) of "
            f"{self.settings.stall_timeout_seconds:g} s without a byte in "
            f"{self.patience.spent():.1f} s, {self._have():,}{of_size} bytes received "
            f"(kept in {self.part.name}: the next run resumes from them)"
        )

    def _back_off(self, errors: int, error: Exception) -> None:
        delay = min(
            self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** (errors - 1)
        )
        self.release.log(
            f"{self.remote.name}: {error}; attempt {errors + 1} of "
            f"{self.settings.max_attempts} in {delay:.1f} s, resuming at byte {self._have():,}"
        )
        with self.patience.spending():
            time.sleep(min(delay, max(0.0, self.patience.time_left())))

    def _fetch(self) -> None:
        """Append the missing bytes to the .part file; raise if the connection ends early."""
        offset = self._have()
        if self.remote.size is not None and offset >= self.remote.size:
            if offset > self.remote.size:
                self.part.unlink()
                raise _IncompleteDownload(f"a stale .part of {offset:,} bytes was dropped")
            return
        wait = min(self.settings.stall_timeout_seconds, self.patience.time_left())
        if wait <= 0:
            raise TimeoutError("the deadline passed before the request")
        try:
            response = self.release.client.open(self.remote, offset, timeout=wait)
        except HttpStatusError as error:
            if error.code == 416 and offset:
                self.part.unlink()
                raise _IncompleteDownload("the server refused the resume range") from error
            raise
        with response:
            start, total = self._range_of(response, offset)
            if start:
                self.resumes += 1
                self.release.meter.resumed()
            verb = f"resuming at byte {start:,}" if start else "downloading"
            size = f"{total / MB:,.1f} MB" if total is not None else "size unknown"
            self.release.log(f"{self.remote.name}: {verb} ({size})")
            with self.part.open("r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                self._copy(response, out, start, total)
        have = self._have()
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
        """Write each piece as it arrives; tell the gate when the stream keeps flowing.

        `read1`, not `read`: `read(n)` waits until it holds n bytes, so a stall in the
        middle of a chunk raised the timeout with the bytes received so far still in its
        hands, and the retry asked again for all of them (a file under a chunk restarted
        at byte 0). `read1` hands over whatever one socket read brought.
        """
        position, next_report = start, start + self.settings.progress_every_bytes
        flowing_since = waiting_since = time.monotonic()
        while chunk := response.read1(self.settings.chunk_bytes):
            now = time.monotonic()
            self.longest_wait = max(self.longest_wait, now - waiting_since)
            out.write(chunk)
            position += len(chunk)
            self.fetched += len(chunk)
            self.release.meter.received(len(chunk))
            if self.patience.time_left() <= 0:  # bytes that trickle in never time out
                raise TimeoutError(f"deadline passed at byte {position:,}")
            if now - flowing_since >= self.settings.stall_timeout_seconds:
                self.release.gate.flowed()
                flowing_since = now
            if position >= next_report:
                self._report(position, total)
                next_report += self.settings.progress_every_bytes
            waiting_since = time.monotonic()

    def _report(self, position: int, total: int | None) -> None:
        share = f" ({position / total:.0%})" if total else ""
        self.release.log(
            f"{self.remote.name}: {position / MB:,.0f} MB{share} at "
            f"{rate(self.fetched, time.monotonic() - self.started)}, "
            f"{self.patience.stalls} stall(s), {self.resumes} resume(s); {self.release.status()}"
        )
