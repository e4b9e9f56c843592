"""Runs that died give their pool slots back: at a CLI load's start, and by the daemon.

A run whose process is gone stays STARTED and keeps its slots; two of them blocked
every later load. These tests plant runs in the instance the CLI uses, each tagged
with a worker (a process that is gone, this live test process, a process on another
host), give them slots of a pool of their own, and check who is healed and who is left.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import psutil
import pytest
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.runs.healing import heal_dead_runs
from cnpj_assets.runs.worker import RunWorker
from cnpj_assets_tests.helpers import add_started_run

POOL = "healing_test_pool"


@pytest.fixture(scope="module")
def instance(
    postgres_server: ServerUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dg.DagsterInstance]:
    with pytest.MonkeyPatch.context() as restore:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")
        restore.setenv("CNPJ_HOME", str(tmp_path_factory.mktemp("healing_home")))
        instance = get_instance(postgres_server)
        instance.event_log_storage.set_concurrency_slots(POOL, 10)
        yield instance
        instance.event_log_storage.delete_concurrency_limit(POOL)


@pytest.fixture
def dead_worker() -> RunWorker:
    """A worker whose process existed and is gone (killed, as a lost server's run is)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = RunWorker.current()
    worker = RunWorker(worker.host, process.pid, psutil.Process(process.pid).create_time())
    process.kill()
    process.wait()
    return worker


def started_run(instance: dg.DagsterInstance, worker: RunWorker, slots: int = 1) -> str:
    """A STARTED run of `worker` holding `slots` slots of the test pool."""
    run_id = add_started_run(instance, worker)
    for slot in range(slots):
        claim = instance.event_log_storage.claim_concurrency_slot(POOL, run_id, f"step{slot}")
        assert claim.is_claimed
    return run_id


def holders(instance: dg.DagsterInstance) -> list[str]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return sorted(slot.run_id for slot in info.claimed_slots)


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_a_dead_run_is_failed_and_its_slots_freed_the_live_and_the_remote_are_left(
    instance: dg.DagsterInstance, dead_worker: RunWorker
) -> None:
    here = RunWorker.current()
    dead = started_run(instance, dead_worker, slots=2)
    alive = started_run(instance, here)
    # on another host: its pid, gone from this one, proves nothing there
    remote = started_run(instance, RunWorker("another-host", dead_worker.pid, dead_worker.started))
    said: list[str] = []
    try:
        assert heal_dead_runs(instance, said.append) == 1
        assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
        assert status(instance, alive) == status(instance, remote) == dg.DagsterRunStatus.STARTED
        assert holders(instance) == sorted([alive, remote])
        assert said == [
            f"run {dead} (load_release) died with its {dead_worker}: marked FAILED, freed 2 "
            f"slot(s) of {POOL}"
        ]
    finally:
        for run_id in (dead, alive, remote):
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            instance.delete_run(run_id)


def test_a_finished_run_that_kept_its_slots_gives_them_back(
    instance: dg.DagsterInstance,
) -> None:
    """Marking a stuck run CANCELED in the UI used to leave its slots taken."""
    run_id = started_run(instance, RunWorker.current())
    run = instance.get_run_by_id(run_id)
    assert run is not None
    instance.report_run_canceled(run, "canceled by hand")
    said: list[str] = []
    try:
        assert holders(instance) == [run_id]
        assert heal_dead_runs(instance, said.append) == 1
        assert holders(instance) == []
        assert said == [f"run {run_id} is CANCELED but held pool slots: freed 1 slot(s) of {POOL}"]
    finally:
        instance.delete_run(run_id)


def test_the_daemons_run_monitoring_fails_a_run_whose_worker_is_gone(
    instance: dg.DagsterInstance, dead_worker: RunWorker
) -> None:
    assert instance.run_monitoring_enabled
    assert instance.run_launcher.supports_check_run_worker_health
    dead = started_run(instance, dead_worker)
    alive = started_run(instance, RunWorker.current())
    try:
        for run_id in (dead, alive):
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            monitor_started_run(instance, None, record, logging.getLogger("test"))
        assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
        assert status(instance, alive) == dg.DagsterRunStatus.STARTED
    finally:
        for run_id in (dead, alive):
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            instance.delete_run(run_id)
