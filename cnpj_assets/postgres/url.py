"""PostgreSQL URLs checked before libpq sees them, and passwords kept out of every message.

libpq answers a malformed URL with an error that quotes the part it choked on, and that
part is often the password: `unexpected spaces found in "s3cret pw"`, `failed to resolve
host 'ret!pw@127.0.0.1'` (an unencoded `@` ends the user info early). So a URL from
the environment is checked here first, and the error names the variable and the
mistake, never the URL. `redact` is the safety net for any other text that may carry it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from cnpj_assets.one_line_error import OneLineError

SCHEMES = ("postgresql", "postgres")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_PORT = re.compile(r"^(\[[^\]]*\]|[^:\[\]]*)(?::(.*))?$")
MASK = "***"


class DatabaseUrlError(OneLineError, ValueError):
    """A URL that libpq would refuse; the message names the mistake, never the password."""


def _authority(url: str) -> tuple[str, str]:
    """The part between `scheme://` and the path, as libpq splits it, and what follows."""
    rest = url.split("://", 1)[1]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    return (rest, "") if end < 0 else (rest[:end], rest[end:])


def check_url(url: str, variable: str) -> None:
    """Raise DatabaseUrlError if libpq would misread `url`; `variable` names its source."""

    def refuse(problem: str) -> DatabaseUrlError:
        return DatabaseUrlError(f"{variable} is not a valid PostgreSQL URL: {problem}")

    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise refuse("it must start with postgresql:// (postgresql://user:password@host/database)")
    if any(character.isspace() for character in url):
        raise refuse("it holds a space or a line break; percent-encode a space as %20")
    if _PERCENT.search(url):
        raise refuse("a % is not followed by two hex digits; write a literal % as %25")
    authority, after = _authority(url)
    if "@" in after:
        raise refuse(
            "the user name or password holds an unencoded '/', '?' or '#'; percent-encode them "
            "(%2F, %3F, %23)"
        )
    if authority.count("@") > 1:
        raise refuse("the user name or password holds an unencoded '@'; write it as %40")
    for host in authority.rpartition("@")[2].split(","):
        match = _HOST_PORT.match(host)
        port = match.group(2) if match else None
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise refuse("a port is not a number from 1 to 65535")


def passwords(url: str) -> list[str]:
    """The password of `url` as written and decoded, from its user info and its query."""
    if "://" not in url:
        return []
    authority, after = _authority(url)
    userinfo = authority.rpartition("@")[0]
    found = [userinfo.partition(":")[2]] if ":" in userinfo else []
    query = after.partition("?")[2].partition("#")[0]
    pairs = (part.partition("=") for part in query.split("&"))
    found += [value for key, _, value in pairs if unquote(key) == "password"]
    return sorted({form for p in found if p for form in (p, unquote(p))}, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """`text` with every form of the URL's password replaced by ***."""
    for password in passwords(url):
        text = text.replace(password, MASK)
    return text
