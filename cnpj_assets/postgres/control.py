"""`cnpj-assets server status|stop`: see and stop the embedded PostgreSQL.

The embedded server outlives the command that started it, so the next command (or the
UI) finds it warm; these let a user see it and stop it. Both read PostgreSQL's own
`postmaster.pid` (pid, start time, socket folder) and never start a server. Stopping
sends SIGINT, PostgreSQL's fast shutdown: open transactions roll back, clients are
disconnected, the data is left consistent.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cnpj_assets.postgres.server import ServerUrl, cnpj_home

STOP_SECONDS = 60.0
NOT_RUNNING = 3  # the exit code pg_ctl status gives for a stopped server


@dataclass(frozen=True)
class EmbeddedServer:
    """What `postmaster.pid` says of the server under one data folder."""

    pgdata: Path
    pid: int | None
    started: datetime.datetime | None
    socket_dir: str | None

    @property
    def running(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, under another user
            return True
        return True


def embedded_server(home: Path | None = None) -> EmbeddedServer:
    pgdata = (home or cnpj_home()) / "pgdata"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return EmbeddedServer(pgdata, None, None, None)
    started = (
        datetime.datetime.fromtimestamp(int(lines[2])).astimezone() if len(lines) > 2 else None
    )
    socket_dir = lines[4] if len(lines) > 4 and lines[4] else None
    return EmbeddedServer(pgdata, int(lines[0]), started, socket_dir)


def _configured_note() -> str | None:
    configured = os.environ.get("CNPJ_DATABASE_URL")
    if not configured:
        return None
    return f"CNPJ_DATABASE_URL is set: the project uses {ServerUrl(configured).redacted()}"


def status() -> int:
    """Print whether the embedded server runs; exit code 3 when it does not."""
    note = _configured_note()
    if note:
        print(note)
    server = embedded_server()
    if not server.running:
        print(f"embedded PostgreSQL: not running (data {server.pgdata})")
        return NOT_RUNNING
    since = f", since {server.started:%Y-%m-%d %H:%M:%S %z}" if server.started else ""
    print(f"embedded PostgreSQL: running, pid {server.pid}{since}, data {server.pgdata}")
    print(f"  socket folder {server.socket_dir}; its URL: cnpj-assets db-url")
    return 0


def stop(timeout: float = STOP_SECONDS) -> int:
    """Fast shutdown of the embedded server; wait until its process is gone."""
    server = embedded_server()
    if not server.running or server.pid is None:
        print(f"embedded PostgreSQL: not running (data {server.pgdata})")
        return 0
    print(f"embedded PostgreSQL: stopping pid {server.pid} (fast shutdown)", flush=True)
    os.kill(server.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while embedded_server().running:
        if time.monotonic() > deadline:
            print(f"embedded PostgreSQL: pid {server.pid} still running after {timeout:g} s")
            return 1
        time.sleep(0.2)
    print("embedded PostgreSQL: stopped")
    return 0
