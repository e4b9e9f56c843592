"""Outages heal by themselves, and a load stops when asked: the real CLI, a real server stop.

The session's server is stopped mid-load until `cnpj-assets load` gives up, then
started again: the next load must heal the dead run (marked failed, its pool slots
freed) and finish with exact counts, twice in a row (two dead runs used to hold both
slots, and every later load waited forever). SIGTERM must stop a running load, and a
load waiting for a slot that a live run holds, within seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.defs.assets import LOAD_POOL
from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.runs.worker import RunWorker
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.dagster_processes import wait_for
from cnpj_assets_tests.helpers import add_started_run, count_rows, database_of_its_own, query
from cnpj_assets_tests.oracle import read_table
from cnpj_assets_tests.server_control import outage

LOST = "2027-05"  # loaded through two outages
STOPPED = "2027-06"  # stopped by SIGTERM mid-load
WAITING = "2027-07"  # waits for a slot a live run holds
FACTS = ("empresas", "estabelecimentos", "socios", "simples")
CLI = str(Path(sys.executable).with_name("cnpj-assets"))
STOP_SECONDS = 10
GIVE_UP_SECONDS = 300  # a load must end by itself within this once its server is gone


@pytest.fixture(scope="module")
def postgres_server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of this module's own: it publishes releases, and which release is
    published is global state that the other modules' drift checks compare with."""
    with database_of_its_own(postgres_server, "cnpj_outages") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outage_landing")
    for release in (LOST, STOPPED):  # the same rows: each is published, and the drift
        # guard refused the second when its tables were smaller than the first's
        write_release(release=release, rows=20_000, out_dir=folder, seed=51)
    write_release(release=WAITING, rows=300, out_dir=folder, seed=53)
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CNPJ_HOME of the CLI's loads: its dagster.yaml; the runs are in the session's server."""
    return tmp_path_factory.mktemp("outage_home")


@pytest.fixture(scope="module")
def instance(postgres_server: ServerUrl, home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance the CLI's loads use, seen from this process."""
    with pytest.MonkeyPatch.context() as restore:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")
        restore.setenv("CNPJ_HOME", str(home))
        yield get_instance(postgres_server)


@dataclass
class Load:
    """`cnpj-assets load` running in a session of its own, its output in a file."""

    process: subprocess.Popen
    output: Path

    @classmethod
    def start(cls, release: str, landing: Path, home: Path, tmp_path: Path) -> Load:
        output = tmp_path / f"load-{release}-{time.monotonic_ns()}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [CLI, "load", "--release", release, "--landing", str(landing)],
                env={**_environment(), "CNPJ_HOME": str(home), "PYTHONUNBUFFERED": "1"},
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(process, output)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def finish(self, seconds: float) -> int:
        try:
            return self.process.wait(timeout=seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def _environment() -> dict[str, str]:
    """This process's environment, without the instance it may have prepared for itself."""
    return {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "DAGSTER_PG_URL")}


def committed_fact_subbatches(server: ServerUrl, release: str, after_load: int) -> int:
    return query(
        server,
        """SELECT count(*) FROM cnpj_audit.subbatch_load s
           JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
           JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
           JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
           WHERE t.release = %s AND t.id > %s AND t.table_name = ANY(%s)
             AND s.status = 'COMPLETED'""",
        (release, after_load, list(FACTS)),
    )[0][0]


def last_table_load(server: ServerUrl) -> int:
    with psycopg.connect(server.url, autocommit=True) as connection:
        ensure_audit_schema(connection)  # this module may run first, on an empty database
        row = connection.execute("SELECT coalesce(max(id), 0) FROM cnpj_audit.table_load")
        return row.fetchone()[0]


def start_mid_load(
    release: str, landing: Path, home: Path, tmp_path: Path, server: ServerUrl
) -> Load:
    """A load, returned once its fact tables have committed a few sub-batches."""
    before = last_table_load(server)
    load = Load.start(release, landing, home, tmp_path)
    wait_for(
        f"{release} to commit fact sub-batches",
        lambda: (
            load.process.poll() is None and committed_fact_subbatches(server, release, before) >= 3
        ),
        180,
        every=0.2,
    )
    return load


def assert_exact(server: ServerUrl, landing: Path, release: str) -> None:
    for table in TABLES:
        oracle = sum(len(f.good) for f in read_table(landing, release, table).values())
        assert count_rows(server, table, release) == oracle, table


def pool_holders(instance: dg.DagsterInstance) -> list[str]:
    return [
        s.run_id for s in instance.event_log_storage.get_concurrency_info(LOAD_POOL).claimed_slots
    ]


def test_a_lost_server_ends_the_load_in_a_line_and_the_next_load_heals_twice_in_a_row(
    postgres_server: ServerUrl,
    embedded_home: Path,
    landing: Path,
    home: Path,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    for _ in range(2):
        victim = start_mid_load(LOST, landing, home, tmp_path, postgres_server)
        with outage(embedded_home / "pgdata"):
            stopped = time.monotonic()
            assert victim.finish(GIVE_UP_SECONDS) == 1
            print(f"server stopped to the load's exit: {time.monotonic() - stopped:.0f} s")
        said = victim.text()
        assert "Traceback" not in said, said[-5000:]
        assert re.search(
            rf"cnpj_assets - (?:{'|'.join(FACTS)}) {LOST} \([^)]+\): .*the next run resumes "
            "from the committed sub-batches$",
            said,
            re.MULTILINE,
        ), said[-5000:]
        database = postgres_server.url.split("?", 1)[0]  # the URL up to its options
        assert f"cnpj-assets load: PostgreSQL ({database}" in said
        assert f"was lost while loading {LOST}" in said
        healer = Load.start(LOST, landing, home, tmp_path)
        assert healer.finish(GIVE_UP_SECONDS) == 0, healer.text()[-5000:]
        assert re.search(
            r"^run \S+ \(load_release\) died with its process \d+ on .*: marked FAILED",
            healer.text(),
            re.MULTILINE,
        ), healer.text()[:3000]
        assert_exact(postgres_server, landing, LOST)
        assert pool_holders(instance) == []
    runs = instance.get_runs(
        dg.RunsFilter(job_name="load_release", tags={"dagster/partition": LOST})
    )
    assert [r.status for r in runs] == [
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
    ]


def test_sigterm_stops_a_running_load_within_seconds_and_the_next_run_resumes_it(
    postgres_server: ServerUrl,
    landing: Path,
    home: Path,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    victim = start_mid_load(STOPPED, landing, home, tmp_path, postgres_server)
    asked = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    assert victim.finish(STOP_SECONDS) == 130
    took = time.monotonic() - asked
    said = victim.text()
    assert f"load of {STOPPED} stopped; the next `cnpj-assets load --release {STOPPED}`" in said
    assert "stopped (the run was interrupted" in said
    (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": STOPPED}))
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert query(
        postgres_server,
        "SELECT count(*) FROM cnpj_audit.table_load WHERE dagster_run_id = %s AND status = 'RUNNING'",
        (run.run_id,),
    ) == [(0,)]
    assert pool_holders(instance) == []
    resumer = Load.start(STOPPED, landing, home, tmp_path)
    assert resumer.finish(GIVE_UP_SECONDS) == 0, resumer.text()[-5000:]
    assert_exact(postgres_server, landing, STOPPED)
    resumed = query(
        postgres_server,
        "SELECT count(*) FROM cnpj_audit.table_load WHERE release = %s AND resumed_from IS NOT NULL",
        (STOPPED,),
    )[0][0]
    assert resumed >= 1, "a stopped table resumes from its committed sub-batches"
    print(f"SIGTERM to exit: {took:.1f} s")


def test_a_load_waiting_for_a_slot_says_what_holds_it_and_stops_on_sigterm(
    landing: Path, home: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    holder = add_started_run(instance, RunWorker.current())  # alive: the next load leaves it
    storage = instance.event_log_storage
    storage.set_concurrency_slots(LOAD_POOL, 2)
    for step in ("cnpj__empresas", "cnpj__socios"):
        assert storage.claim_concurrency_slot(LOAD_POOL, holder, step).is_claimed
    try:
        waiting = Load.start(WAITING, landing, home, tmp_path)
        report = f"cnpj_postgres: 2 of 2 slots held by run(s) {holder[:8]}"
        wait_for(
            "two reports of the wait",
            lambda: waiting.process.poll() is None and waiting.text().count(report) >= 2,
            180,
            every=0.5,
        )
        asked = time.monotonic()
        waiting.process.send_signal(signal.SIGTERM)
        assert waiting.finish(STOP_SECONDS) == 130
        print(f"SIGTERM to exit while waiting: {time.monotonic() - asked:.1f} s")
        assert sorted(pool_holders(instance)) == [holder, holder]
    finally:
        storage.free_concurrency_slots_for_run(holder)
        instance.delete_run(holder)
