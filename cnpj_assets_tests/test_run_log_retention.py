"""The retention of the runs' log lines, on the PostgreSQL instance `cnpj-assets` uses:
old plain log lines go, the structured events (materializations, steps) stay, and so
does every log line younger than keep_days."""

import datetime
import os
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

from cnpj_assets.definitions import defs
from cnpj_assets.defs.run_log_retention import purge_run_log_lines_job
from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.server import ServerUrl

KEY = dg.AssetKey(["retention_test", "logged"])


@dg.asset(key=KEY)
def logged(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for line in range(3):
        context.log.info(f"progress line {line}")
    return dg.MaterializeResult(metadata={"rows": 3})


@pytest.fixture(scope="module")
def instance(postgres_server: ServerUrl) -> Iterator[dg.DagsterInstance]:
    with pytest.MonkeyPatch.context() as restore:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")
        yield get_instance(postgres_server)


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is None and entry.user_message.startswith("progress line")
    ]


def age(instance: dg.DagsterInstance, run_id: str, days: int) -> None:
    """Make a run's events `days` older, as if it had run then."""
    table = SqlEventLogStorageTable
    with instance.event_log_storage.index_connection() as connection:
        connection.execute(
            table.update()
            .where(table.c.run_id == run_id)
            .values(timestamp=table.c.timestamp - datetime.timedelta(days=days))
        )


def test_old_log_lines_go_and_the_history_stays(instance: dg.DagsterInstance) -> None:
    old = dg.materialize([logged], instance=instance)
    recent = dg.materialize([logged], instance=instance)
    age(instance, old.run_id, days=91)
    assert len(log_lines(instance, old.run_id)) == 3
    purged = purge_run_log_lines_job.execute_in_process(instance=instance)
    assert purged.success
    assert log_lines(instance, old.run_id) == []
    assert len(log_lines(instance, recent.run_id)) == 3
    kept = {
        entry.dagster_event.event_type_value
        for entry in instance.all_logs(old.run_id)
        if entry.dagster_event is not None
    }
    structured = ("STEP_START", "ASSET_MATERIALIZATION", "STEP_SUCCESS", "RUN_SUCCESS")
    assert {dg.DagsterEventType[name].value for name in structured} <= kept
    history = instance.fetch_materializations(KEY, limit=10).records
    assert {r.run_id for r in history} >= {old.run_id, recent.run_id}


def test_the_purge_runs_daily_where_a_retention_is_set_and_only_there() -> None:
    schedule = defs.resolve_schedule_def("purge_run_log_lines_daily")
    assert schedule.job_name == "purge_run_log_lines"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    script = (
        "import dagster as dg; from cnpj_assets.definitions import defs; "
        "s = defs.resolve_schedule_def('purge_run_log_lines_daily'); "
        "print(s.default_status.value, "
        "s.evaluate_tick(dg.build_schedule_context()).run_requests[0].run_config)"
    )
    env = {**os.environ, "CNPJ_RUN_LOG_RETENTION_DAYS": "30"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status, config = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "RUNNING"
    assert "'keep_days': 30" in config
