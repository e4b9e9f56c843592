"""Reading the share's listings: WebDAV multistatus XML and the old HTML index.

Both layouts become the same RemoteFile records, so the downloader and the sensors never
care which one answered. Parsing is kept apart from HTTP so it is tested on plain text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

from cnpj_assets.landing import RELEASE_PATTERN

DAV = "{DAV:}"


class ListingError(ValueError):
    """A listing that cannot be read; the message names the URL."""


@dataclass(frozen=True)
class RemoteFile:
    """One zip of a release on the share. `size` is None where the listing has no sizes;
    `modified` (an HTTP date) and `etag` say which version of the file is listed."""

    name: str
    url: str
    size: int | None
    modified: str | None
    etag: str | None = None


@dataclass(frozen=True)
class DavEntry:
    """One `d:response` of a PROPFIND answer."""

    name: str
    url: str
    is_folder: bool
    size: int | None
    modified: str | None
    etag: str | None


def parse_multistatus(xml_text: bytes | str, request_url: str) -> list[DavEntry]:
    """The children of the folder a PROPFIND Depth 1 asked about (the folder itself left out)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as error:
        raise ListingError(f"{request_url}: not a WebDAV multistatus answer ({error})") from error
    if root.tag != f"{DAV}multistatus":
        raise ListingError(f"{request_url}: expected d:multistatus, got {root.tag}")
    folder_path = unquote(urlsplit(request_url).path).rstrip("/")
    entries = []
    for response in root.iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        path = unquote(urlsplit(href).path)
        if path.rstrip("/") == folder_path:
            continue
        prop = _ok_prop(response)
        is_folder = path.endswith("/") or (
            prop is not None and prop.find(f"{DAV}resourcetype/{DAV}collection") is not None
        )
        length = prop.findtext(f"{DAV}getcontentlength") if prop is not None else None
        modified = prop.findtext(f"{DAV}getlastmodified") if prop is not None else None
        etag = prop.findtext(f"{DAV}getetag") if prop is not None else None
        entries.append(
            DavEntry(
                name=path.rstrip("/").rsplit("/", 1)[-1],
                url=urljoin(request_url, href),
                is_folder=is_folder,
                size=int(length) if length and length.strip().isdigit() else None,
                modified=modified.strip() if modified else None,
                etag=etag.strip() if etag else None,
            )
        )
    return entries


def _ok_prop(response: ET.Element) -> ET.Element | None:
    """The d:prop of the propstat answered 200 (a 404 propstat lists properties it lacks)."""
    for propstat in response.iter(f"{DAV}propstat"):
        status = propstat.findtext(f"{DAV}status") or ""
        if " 200 " in f"{status} ":
            return propstat.find(f"{DAV}prop")
    return None


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def index_links(html_text: str) -> list[str]:
    """Every href of an HTML index page (an Apache or nginx autoindex)."""
    parser = _LinkParser()
    parser.feed(html_text)
    return parser.hrefs


def releases_in(names: list[str]) -> list[str]:
    """The YYYY-MM names among folder names or links, sorted, without repeats."""
    months = {
        name.strip("/").rsplit("/", 1)[-1]
        for name in names
        if RELEASE_PATTERN.fullmatch(name.strip("/").rsplit("/", 1)[-1])
    }
    return sorted(months)


ZIP_LINK = re.compile(r"[^/?#]+\.zip", flags=re.IGNORECASE)


def zips_in_index(html_text: str, page_url: str) -> list[RemoteFile]:
    """The zips an HTML index links to; an index shows no exact size, so size is None."""
    files: dict[str, RemoteFile] = {}
    for href in index_links(html_text):
        name = unquote(urlsplit(href).path).rsplit("/", 1)[-1]
        if ZIP_LINK.fullmatch(name):
            files[name] = RemoteFile(name, urljoin(page_url, href), None, None)
    return sorted(files.values(), key=lambda f: f.name.lower())
