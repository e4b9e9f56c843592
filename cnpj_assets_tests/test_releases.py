"""A release's life: refused when partial, published when whole and checked, never
blocking readers, and dropped beyond `keep_releases` with its audit kept.

The module works in a database of its own (publication is global state: which release
`cnpj_current` shows), through the same paths as a user: `cnpj-assets load` and
`cnpj-assets releases`, the publication asset with its config, and PostgreSQL readers
on other connections.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from cnpj_assets.cli import main
from cnpj_assets.defs.assets import RELEASES
from cnpj_assets.landing import discover_release
from cnpj_assets.load.loader import LoadSettings, TableLoader
from cnpj_assets.postgres.brief_locks import LockDeadlineError
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.releases.space import InsufficientSpaceError
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import database_of_its_own, publish, rewrite_member

FIRST, SECOND, SHRUNK = "2025-01", "2025-02", "2025-03"
PROBE_EVERY = 0.2
MAX_PROBE_WAIT = 2.0


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of this module's own, used by everything the module runs."""
    with database_of_its_own(postgres_server, "cnpj_releases") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two identical months, then a third whose establishments shrank by ~10%."""
    landing = tmp_path_factory.mktemp("releases_landing")
    for release in (FIRST, SECOND, SHRUNK):
        write_release(release=release, rows=2000, out_dir=landing, seed=41)
    rewrite_member(
        landing / SHRUNK / "Estabelecimentos0.zip", lambda records: records[: len(records) * 3 // 4]
    )
    return landing


def query(server: ServerUrl, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(server.url) as connection:
        return connection.execute(statement, params).fetchall()


def current_release(server: ServerUrl) -> list[tuple]:
    return query(server, "SELECT DISTINCT release FROM cnpj_current.estabelecimentos")


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def two_published(server: ServerUrl, landing: Path) -> None:
    for release in (FIRST, SECOND):
        assert main(["load", "--release", release, "--landing", str(landing)]) == 0


def test_a_partial_or_empty_release_is_refused_in_one_line_before_anything_runs(
    server: ServerUrl, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    instance = dg.DagsterInstance.get()
    partial, empty = tmp_path / "2024-05", tmp_path / "2024-06"
    partial.mkdir()
    empty.mkdir()
    write_release(release="2024-04", rows=200, out_dir=tmp_path, seed=1)
    for zip_path in sorted((tmp_path / "2024-04").glob("*.zip"))[:5]:
        zip_path.rename(partial / zip_path.name)
    for release in ("2024-05", "2024-06"):
        status, out, err = cli(capsys, "load", "--release", release, "--landing", str(tmp_path))
        assert status == 2 and out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert release in err
        assert not instance.has_dynamic_partition(RELEASES.name, release)
        assert not instance.get_runs(dg.RunsFilter(tags={"dagster/partition": release}))
        attached = query(
            server,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'cnpj' AND tablename LIKE %s",
            (f"%{release.replace('-', '_')}%",),
        )
        assert attached == [(0,)]
    assert (
        "5 of 37 zips, missing"
        in cli(capsys, "load", "--release", "2024-05", "--landing", str(tmp_path))[2]
    )


def rows_of(server: ServerUrl, release: str) -> int:
    return query(
        server, "SELECT count(*) FROM cnpj.estabelecimentos WHERE release = %s", (release,)
    )[0][0]


def test_a_releases_life_published_refused_forced_kept_and_dropped(
    two_published, server: ServerUrl, landing: Path, capsys: pytest.CaptureFixture
) -> None:
    """One story, in order: two whole months published; a backfill of the first leaves
    cnpj_current alone; a shrunk third loads but is refused; forcing it publishes it and
    is recorded; with keep_releases=2 the first is dropped, its audit kept."""
    assert current_release(server) == [(SECOND,)]
    backfill = publish(landing, FIRST)
    assert backfill.success
    assert (
        backfill.get_asset_materialization_events()[0].materialization.metadata["published"].value
        is False
    )
    assert current_release(server) == [(SECOND,)]

    status, out, _ = cli(capsys, "load", "--release", SHRUNK, "--landing", str(landing))
    assert status == 1
    assert f"{SHRUNK} refused: estabelecimentos row_count_drift" in out
    assert current_release(server) == [(SECOND,)]
    assert 0.85 * rows_of(server, SECOND) < rows_of(server, SHRUNK) < 0.95 * rows_of(server, SECOND)
    (outcome, forced, reason) = query(
        server,
        "SELECT outcome, forced, reason FROM cnpj_audit.publication WHERE release = %s",
        (SHRUNK,),
    )[-1]
    assert (outcome, forced) == ("refused", False) and "row_count_drift" in reason

    result = publish(
        landing, SHRUNK, force_reason="a short Estabelecimentos0 accepted", keep_releases=2
    )
    assert result.success
    assert current_release(server) == [(SHRUNK,)]
    (forced, reason, previous) = query(
        server,
        "SELECT forced, reason, previous_release FROM cnpj_audit.publication "
        "WHERE release = %s AND outcome = 'published'",
        (SHRUNK,),
    )[-1]
    assert forced and previous == SECOND
    assert "a short Estabelecimentos0 accepted" in reason and "row_count_drift" in reason
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dropped_releases"].value == [FIRST]
    leftovers = query(
        server,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'cnpj' AND tablename LIKE %s",
        (f"%{FIRST.replace('-', '_')}%",),
    )
    assert leftovers == []
    completed, dropped = query(
        server,
        "SELECT count(*), count(dropped_at) FROM cnpj_audit.table_load WHERE release = %s "
        "AND status = 'COMPLETED'",
        (FIRST,),
    )[0]
    assert completed >= len(TABLES) + 1 and dropped == completed  # kept, marked dropped

    by_release = {r["release"]: r for r in json.loads(cli(capsys, "releases", "--json")[1])}
    assert by_release[FIRST]["state"] == "dropped" and by_release[FIRST]["size_bytes"] == 0
    assert by_release[SHRUNK]["state"] == "published, current"
    assert by_release[SECOND]["state"] == "published before"
    lines = cli(capsys, "releases")[1].splitlines()
    assert [line.split()[0] for line in lines] == [SHRUNK, SECOND, FIRST]
    assert "dropped" in lines[2] and "published, current" in lines[0]


class Probe:
    """Queries a view or table every 0.2 s on its own connection; keeps the longest wait."""

    def __init__(self, server: ServerUrl, relation: str) -> None:
        self.server, self.relation = server, relation
        self.longest = 0.0
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.server.url, autocommit=True) as connection:
            while not self._stop.is_set():
                started = time.monotonic()
                connection.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(self.relation))
                )
                self.longest = max(self.longest, time.monotonic() - started)
                self.queries += 1
                self._stop.wait(PROBE_EVERY)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()


class LongReader:
    """One query holding its table for `seconds` on its own connection; cancelled at the
    end of the block if it still runs, so a reader meant to outlast a step can be given
    more time than any step takes on a loaded machine."""

    def __init__(self, server: ServerUrl, relation: str, seconds: float) -> None:
        self.url = server.url
        self.connection = psycopg.connect(server.url, autocommit=True)
        self.statement = sql.SQL("SELECT pg_sleep({}) FROM {} LIMIT 1").format(
            sql.Literal(seconds), sql.SQL(relation)
        )
        self.pid = self.connection.info.backend_pid
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            self.connection.execute(self.statement)

    def __enter__(self) -> LongReader:
        self._thread.start()
        time.sleep(0.5)  # the query is running and holds its lock
        return self

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.url, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (self.pid,))
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        self.connection.close()


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:  # handed to the test, which asserts on it
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_swap_behind_a_long_reader_never_makes_readers_queue(
    two_published, server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    release = discover_release(landing, SECOND)
    loader = TableLoader(server.url, LoadSettings(scratch_dir=tmp_path, lock_deadline_seconds=60))
    with Probe(server, "cnpj.empresas") as probe, LongReader(server, "cnpj.empresas", 4):
        started = time.monotonic()
        thread, outcome = in_thread(lambda: loader.load(TABLES["empresas"], release))
        thread.join(timeout=120)
    assert not isinstance(outcome[0], Exception), outcome
    assert time.monotonic() - started >= 3  # it waited for the long reader to end
    assert probe.queries > 10 and probe.longest < MAX_PROBE_WAIT


def test_a_swap_past_its_deadline_names_the_reader_and_the_next_run_only_swaps(
    two_published, server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    release = discover_release(landing, SECOND)
    settings = LoadSettings(scratch_dir=tmp_path, lock_deadline_seconds=1.5)
    with (
        Probe(server, "cnpj.socios") as probe,
        LongReader(server, "cnpj.socios", 600) as reader,  # ended by the block's end
        pytest.raises(LockDeadlineError) as refused,
    ):
        TableLoader(server.url, settings, progress=lambda _: None).load(TABLES["socios"], release)
    assert f"pid {reader.pid}" in str(refused.value) and "pg_sleep" in str(refused.value)
    assert probe.longest < MAX_PROBE_WAIT
    messages: list[str] = []
    summary = TableLoader(server.url, settings, progress=messages.append).load(
        TABLES["socios"], release
    )
    assert any("swapping in" in m for m in messages), messages
    copied = query(
        server,
        "SELECT count(*) FROM cnpj_audit.lineage WHERE table_load_id = %s",
        (summary.table_load_id,),
    )
    assert copied == [(0,)]  # not one row copied again
    assert (
        summary.tree["rows"]
        == query(server, "SELECT count(*) FROM cnpj.socios WHERE release = %s", (SECOND,))[0][0]
    )


def test_publishing_behind_a_long_reader_of_cnpj_current_never_makes_readers_queue(
    two_published, server: ServerUrl, landing: Path
) -> None:
    """The current release published again: its views are replaced under the reader."""
    ((shown,),) = current_release(server)
    with (
        Probe(server, "cnpj_current.empresas") as probe,
        LongReader(server, "cnpj_current.empresas", 4),
    ):
        started = time.monotonic()
        result = publish(landing, shown, force_reason="test: published again behind a reader")
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["published"].value is True
    assert time.monotonic() - started >= 3  # it waited for the long reader to end
    assert probe.queries > 10 and probe.longest < MAX_PROBE_WAIT


def test_a_load_that_would_not_fit_is_refused_before_its_first_copy(
    server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    release = discover_release(landing, SECOND)
    settings = LoadSettings(scratch_dir=tmp_path, disk_budget_gb=0.001, full_reload=True)
    with pytest.raises(InsufficientSpaceError) as refused:
        TableLoader(server.url, settings, progress=lambda _: None).load(TABLES["socios"], release)
    message = str(refused.value)
    assert "socios 2025-02 needs about" in message and "the budget of 0.001 GiB" in message
    (status, error, copied) = query(
        server,
        "SELECT t.status, t.error, (SELECT count(*) FROM cnpj_audit.lineage l "
        "WHERE l.table_load_id = t.id) FROM cnpj_audit.table_load t "
        "WHERE t.table_name = 'socios' ORDER BY t.id DESC LIMIT 1",
    )[0]
    assert status == "FAILED" and "needs about" in error and copied == 0
    assert query(
        server, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'socios_2025_02_load%%'"
    ) == [(0,)]
