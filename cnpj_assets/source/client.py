"""HTTP access to the Receita Federal share: WebDAV first, the old HTML index second.

Standard library only (urllib), so the source adds no dependency. The share is a
Nextcloud public share: basic auth with the share token as user and an empty password.
The token is public (it is in the share's own link), yet it is sent only to the share's
host and never logged.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import TypeVar
from urllib.parse import quote, urljoin, urlsplit

from cnpj_assets.landing import validate_release_name
from cnpj_assets.source.listing import (
    DavEntry,
    RemoteFile,
    index_links,
    parse_multistatus,
    releases_in,
    zips_in_index,
)

PROPFIND_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop>
<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>
</d:prop></d:propfind>"""

T = TypeVar("T")
TOKEN_REFUSED = (
    "the share refused its token: set share_token of the `receita` resource to the token "
    "of the share's current public link"
)


class SourceError(RuntimeError):
    """Neither layout of the share answered; the message says what each one said."""


class HttpStatusError(OSError):
    """An HTTP error status, kept as a number so the downloader can tell 416 from 503."""

    def __init__(self, method: str, url: str, code: int, reason: str) -> None:
        super().__init__(f"{method} {url}: HTTP {code} {reason}")
        self.code = code


def _folder(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class ShareClient:
    """Lists releases and files, and opens downloads, on the share or the old index."""

    share_url: str
    share_token: str
    legacy_url: str | None
    timeout: float = 60.0

    def list_releases(self) -> list[str]:
        """The YYYY-MM folders the source holds, oldest first."""
        return self._either(
            "list releases",
            lambda: releases_in(
                [e.name for e in self._propfind(_folder(self.share_url)) if e.is_folder]
            ),
            lambda url: releases_in(index_links(self._get_text(url))),
        )

    def list_files(self, release: str) -> list[RemoteFile]:
        """The zips of one release, with sizes where the layout gives them."""
        validate_release_name(release)
        share_folder = urljoin(_folder(self.share_url), quote(release) + "/")
        return self._either(
            f"list the files of {release}",
            lambda: self._zips(share_folder),
            lambda root: self._index_files(urljoin(root, quote(release) + "/")),
        )

    def list_folder(self, name: str) -> tuple[DavEntry, list[RemoteFile]]:
        """A folder at the share's root, found in any case, with its zips (WebDAV only: the
        old index gives no modification date to name a snapshot by)."""
        try:
            root = self._propfind(_folder(self.share_url))
            entry = next((e for e in root if e.is_folder and e.name.lower() == name.lower()), None)
            if entry is None:
                raise SourceError(f"the share {self.share_url} has no folder {name}")
            return entry, self._zips(_folder(entry.url))
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise SourceError(f"list {name}: the share {self.share_url} failed: {error}") from error

    def _zips(self, folder_url: str) -> list[RemoteFile]:
        return sorted(
            (
                RemoteFile(e.name, e.url, e.size, e.modified, e.etag)
                for e in self._propfind(folder_url)
                if not e.is_folder and e.name.lower().endswith(".zip")
            ),
            key=lambda f: f.name.lower(),
        )

    def _index_files(self, page: str) -> list[RemoteFile]:
        return zips_in_index(self._get_text(page), page)

    def open(self, file: RemoteFile, offset: int = 0, timeout: float | None = None) -> HTTPResponse:
        """GET a file from byte `offset` on (HTTP Range); the caller checks 200 vs 206.

        `timeout` bounds every wait on the socket (connect, headers, each read), so a
        downloader gives it its stall timeout instead of the listings' patient default.
        """
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self._request(file.url, "GET", headers=headers, timeout=timeout)

    def _either(self, what: str, share: Callable[[], T], legacy: Callable[[str], T]) -> T:
        try:
            return share()
        except (OSError, ValueError, http.client.HTTPException) as share_error:
            if not self.legacy_url:
                raise SourceError(
                    f"{what}: the share {self.share_url} failed: {share_error}"
                ) from share_error
            try:
                return legacy(_folder(self.legacy_url))
            except (OSError, ValueError, http.client.HTTPException) as legacy_error:
                raise SourceError(
                    f"{what}: the share {self.share_url} failed ({share_error}) and so did the "
                    f"old index {self.legacy_url} ({legacy_error})"
                ) from legacy_error

    def _propfind(self, url: str) -> list[DavEntry]:
        with self._request(url, "PROPFIND", {"Depth": "1"}, PROPFIND_BODY) as response:
            return parse_multistatus(response.read(), url)

    def _get_text(self, url: str) -> str:
        with self._request(url, "GET") as response:
            charset = response.headers.get_content_charset() or "utf-8"
            return response.read().decode(charset, errors="replace")

    def _request(
        self,
        url: str,
        method: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> HTTPResponse:
        headers = dict(headers or {})
        to_share = urlsplit(url).netloc == urlsplit(self.share_url).netloc
        if to_share:
            token = base64.b64encode(f"{self.share_token}:".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if body:
            headers["Content-Type"] = "application/xml; charset=utf-8"
        request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
        try:
            wait = self.timeout if timeout is None else timeout
            return urllib.request.urlopen(request, timeout=wait)
        except urllib.error.HTTPError as error:
            error.close()
            reason = str(error.reason)
            if error.code == 401 and to_share:
                reason += f" ({TOKEN_REFUSED})"
            raise HttpStatusError(method, url, error.code, reason) from None
