"""A fake Receita Federal share on 127.0.0.1: Nextcloud-style WebDAV and the old HTML index.

It answers PROPFIND Depth 1 with the multistatus XML the real share sends (month folders
at the root, zips with getcontentlength, getlastmodified and getetag), checks the share token's
basic auth, serves GET with Range, and can misbehave on purpose: drop the connection
halfway through a file once, stall (send half of what a GET asks for, then go silent with
the connection open, as the real share does to parallel streams) a given number of times
per file, send slowly but steadily, serve a truncated or a corrupt zip, hide files from a
listing, or have no WebDAV at all (only the old index answers).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import zipfile
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

SHARE_TOKEN = "YggdBLfdninEJX9"
DAV_PREFIX = "/public.php/webdav/"
LEGACY_PREFIX = "/dados/cnpj/dados_abertos_cnpj/"
PUBLISHED_AT = 1_760_000_000  # every file's modification time, unless `modified` says else


@dataclass(frozen=True)
class Hit:
    """One request the server answered, for the tests to look at."""

    method: str
    path: str
    range: str | None


@dataclass(frozen=True)
class Stall:
    """One GET that went silent: the file, where the answer started and how much it sent."""

    name: str
    start: int
    sent: int


@dataclass(frozen=True)
class Pace:
    """A slow but live server: `piece_bytes` at a time, `seconds` apart."""

    piece_bytes: int
    seconds: float


def corrupt_member_data(data: bytes) -> bytes:
    """The same zip with one byte flipped in the middle of its first member's data."""
    info = zipfile.ZipFile(BytesIO(data)).infolist()[0]
    header = info.header_offset
    name_length = int.from_bytes(data[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(data[header + 28 : header + 30], "little")
    position = header + 30 + name_length + extra_length + info.compress_size // 2
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


class _Server(ThreadingHTTPServer):
    """Many streams connect at once: the default backlog of 5 drops their SYNs, and the
    client's 1 s retransmission then looks like a share that does not answer."""

    request_queue_size = 128
    daemon_threads = False  # so server_close() joins every handler


@dataclass
class FakeShare:
    """The share's content and its faults; `start()` serves it on a free port."""

    releases: dict[str, dict[str, bytes]]
    webdav: bool = True
    drop_once: set[str] = field(default_factory=set)
    truncated: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)
    stalls: dict[str, int] = field(default_factory=dict)
    stall_seconds: float = 60.0
    pace: Pace | None = None
    modified: dict[str, float] = field(default_factory=dict)  # zip name -> epoch seconds
    folder_modified: dict[str, float] = field(default_factory=dict)  # folder -> epoch seconds
    hits: list[Hit] = field(default_factory=list)
    stalled: list[Stall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @classmethod
    def from_landing(cls, landing: Path, releases: list[str]) -> FakeShare:
        """Serve zips written by write_release under `landing/<release>/`."""
        return cls(
            {
                r: {p.name: p.read_bytes() for p in sorted((landing / r).glob("*.zip"))}
                for r in releases
            }
        )

    def body(self, release: str, name: str) -> bytes:
        data = self.releases[release][name]
        if name in self.truncated:
            return data[: len(data) * 2 // 3]
        if name in self.corrupt:
            return corrupt_member_data(data)
        return data

    def take_stall(self, name: str) -> bool:
        """Whether this GET of `name` stalls, counting it off the file's stalls."""
        with self._lock:
            left = self.stalls.get(name, 0)
            if left:
                self.stalls[name] = left - 1
            return left > 0

    def stay_silent(self, seconds: float) -> None:
        """Wait `seconds`, or less if the server stops: a stall never outlives its server."""
        self._stopping.wait(seconds)

    def version(self, release: str, name: str) -> tuple[str, str]:
        """The file's listed modification time and ETag (a hash of what it serves)."""
        modified = formatdate(self.modified.get(name, PUBLISHED_AT), usegmt=True)
        etag = hashlib.sha1(self.body(release, name)).hexdigest()[:16]
        return modified, f'"{etag}"'

    def folder_version(self, folder: str) -> tuple[str, str]:
        """A folder's listed modification time (the regime folder's snapshot is named by it)."""
        return formatdate(self.folder_modified.get(folder, PUBLISHED_AT), usegmt=True), ""

    def listed(self, release: str) -> list[str]:
        return [n for n in sorted(self.releases[release]) if n not in self.hidden]

    def start(self) -> FakeShare:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def share_url(self) -> str:
        return self.base + DAV_PREFIX

    @property
    def legacy_url(self) -> str:
        return self.base + LEGACY_PREFIX

    def gets(self, name: str) -> list[Hit]:
        return [h for h in self.hits if h.method == "GET" and h.path.endswith("/" + name)]

    def stalls_of(self, name: str) -> list[Stall]:
        return [s for s in self.stalled if s.name == name]


def _multistatus(responses: list[str]) -> bytes:
    return (
        '<?xml version="1.0"?>\n<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
        'xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">'
        + "".join(responses)
        + "</d:multistatus>"
    ).encode()


def _response(href: str, size: int | None = None, version: tuple[str, str] | None = None) -> str:
    modified, etag = version or (formatdate(PUBLISHED_AT, usegmt=True), None)
    kind = (
        "<d:resourcetype><d:collection/></d:resourcetype>"
        if size is None
        else f"<d:resourcetype/><d:getcontentlength>{size}</d:getcontentlength>"
        f"<d:getcontenttype>application/zip</d:getcontenttype><d:getetag>{etag}</d:getetag>"
    )
    return (
        f"<d:response><d:href>{quote(href)}</d:href><d:propstat><d:prop>"
        f"<d:getlastmodified>{modified}</d:getlastmodified>{kind}</d:prop>"
        "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )


def _handler_for(share: FakeShare) -> type[BaseHTTPRequestHandler]:
    expected_auth = "Basic " + base64.b64encode(f"{SHARE_TOKEN}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `share.hits` instead."""

        def _route(self) -> tuple[str, str | None, str | None]:
            """(layout, release, file) of the path; layout is dav, legacy or ''."""
            path = unquote(urlsplit(self.path).path)
            for layout, prefix in (("dav", DAV_PREFIX), ("legacy", LEGACY_PREFIX)):
                if path.startswith(prefix):
                    parts = [p for p in path[len(prefix) :].split("/") if p]
                    return (
                        layout,
                        (parts[0] if parts else None),
                        (parts[1] if len(parts) > 1 else None),
                    )
            return "", None, None

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _authorized(self, layout: str) -> bool:
            if layout != "dav" or self.headers.get("Authorization") == expected_auth:
                return True
            self._send(401, b"token required")
            return False

        def _record(self) -> None:
            share.hits.append(
                Hit(self.command, unquote(urlsplit(self.path).path), self.headers.get("Range"))
            )
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def do_PROPFIND(self) -> None:
            self._record()
            layout, release, name = self._route()
            if layout != "dav" or not share.webdav:
                self._send(404 if layout else 405)
                return
            if not self._authorized(layout):
                return
            if release is None:
                responses = [_response(DAV_PREFIX)]
                responses += [
                    _response(f"{DAV_PREFIX}{r}/", version=share.folder_version(r))
                    for r in sorted(share.releases)
                ]
            elif release in share.releases and name is None:
                folder = f"{DAV_PREFIX}{release}/"
                responses = [_response(folder)]
                responses += [
                    _response(folder + n, len(share.body(release, n)), share.version(release, n))
                    for n in share.listed(release)
                ]
            else:
                self._send(404)
                return
            self._send(207, _multistatus(responses), "application/xml; charset=utf-8")

        def do_GET(self) -> None:
            self._record()
            layout, release, name = self._route()
            if not layout or (layout == "dav" and not share.webdav):
                self._send(404)
                return
            if not self._authorized(layout):
                return
            if name is not None and release in share.releases and name in share.releases[release]:
                self._send_file(release, name)
            elif layout == "legacy" and release is None:
                self._send_index([f"{r}/" for r in sorted(share.releases)])
            elif layout == "legacy" and release in share.releases and name is None:
                self._send_index(share.listed(release))
            else:
                self._send(404)

        def _send_index(self, names: list[str]) -> None:
            """An Apache-style autoindex: links, dates and rounded sizes (no exact bytes)."""
            rows = "".join(f'<a href="{quote(n)}">{n}</a>  2025-10-12 03:14  1.2M\n' for n in names)
            page = f"<html><body><h1>Index</h1><pre>{rows}</pre></body></html>"
            self._send(200, page.encode(), "text/html; charset=utf-8")

        def _send_file(self, release: str, name: str) -> None:
            data = share.body(release, name)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if name in share.drop_once:
                share.drop_once.discard(name)
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if share.take_stall(name):
                sent = (len(data) - start) // 2
                self._write_body(data[start : start + sent])
                share.stalled.append(Stall(name, start, sent))
                share.stay_silent(share.stall_seconds)
                self.close_connection = True
                return
            self._write_body(data[start:])

        def _write_body(self, body: bytes) -> None:
            """All at once, or piece by piece at the share's pace."""
            if share.pace is None:
                self.wfile.write(body)
                self.wfile.flush()
                return
            step = share.pace.piece_bytes
            for offset in range(0, len(body), step):
                if offset:
                    share.stay_silent(share.pace.seconds)
                self.wfile.write(body[offset : offset + step])
                self.wfile.flush()

    return Handler
