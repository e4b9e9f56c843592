"""Retention of the runs' log lines, the bulk of the instance's event log.

Dagster 1.13 purges old sensor and schedule ticks (`retention` in dagster.yaml) but keeps
every event of every run, and deleting a run deletes its materializations too: the
assets' history in the UI. A release load logs a line per batch of every file, thousands
per release; those plain log lines (events with no Dagster event type) are what this
deletes once older than `keep_days`. Every structured event stays: steps,
materializations with their metadata, check results, the run's timeline.

The daily schedule runs where CNPJ_RUN_LOG_RETENTION_DAYS is set (the deployments of
deploy/ set it), so a developer's instance keeps its logs unless asked.
"""

import datetime
import os

import dagster as dg
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

KEEP_DAYS = 90
RETENTION_VARIABLE = "CNPJ_RUN_LOG_RETENTION_DAYS"


class RunLogRetention(dg.Config):
    """How long the runs' log lines are kept."""

    keep_days: int = KEEP_DAYS


def purge_run_log_lines(instance: dg.DagsterInstance, older_than: datetime.datetime) -> int:
    """Delete the plain log lines written before `older_than` (UTC); return how many."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        raise TypeError(f"{type(storage).__name__}: only an SQL event log can be purged")
    table = SqlEventLogStorageTable
    naive_utc = older_than.astimezone(datetime.UTC).replace(tzinfo=None)
    with storage.index_connection() as connection:
        deleted = connection.execute(
            table.delete().where(
                table.c.dagster_event_type.is_(None), table.c.timestamp < naive_utc
            )
        )
    return deleted.rowcount


@dg.op(description="Delete the runs' plain log lines older than keep_days.")
def purge_old_run_log_lines(context: dg.OpExecutionContext, config: RunLogRetention) -> None:
    older_than = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=config.keep_days)
    deleted = purge_run_log_lines(context.instance, older_than)
    context.log.info(f"deleted {deleted:,} run log lines older than {config.keep_days} days")


@dg.job(
    name="purge_run_log_lines",
    executor_def=dg.in_process_executor,
    description="The runs' plain log lines older than keep_days (default 90) are deleted; "
    "their steps, materializations and check results stay.",
)
def purge_run_log_lines_job() -> None:
    purge_old_run_log_lines()


def _retention_days() -> int | None:
    """CNPJ_RUN_LOG_RETENTION_DAYS, which a production deployment sets; unset, None."""
    value = os.environ.get(RETENTION_VARIABLE)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{RETENTION_VARIABLE}={value!r}: expected a number of days, 1 or more")
    return int(value)


RETENTION_DAYS = _retention_days()

purge_run_log_lines_schedule = dg.ScheduleDefinition(
    name="purge_run_log_lines_daily",
    job=purge_run_log_lines_job,
    cron_schedule="30 3 * * *",
    run_config={
        "ops": {"purge_old_run_log_lines": {"config": {"keep_days": RETENTION_DAYS or KEEP_DAYS}}}
    },
    default_status=dg.DefaultScheduleStatus.RUNNING
    if RETENTION_DAYS
    else dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 03:30: the runs' log lines older than CNPJ_RUN_LOG_RETENTION_DAYS "
    "(default 90). On where that variable is set (deploy/), off elsewhere.",
)
