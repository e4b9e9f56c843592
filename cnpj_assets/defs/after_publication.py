"""`after_publication`: what makes a published release faster to read, built once readers
already see it.

The publication waits only for what decides it (the tables, their checks, changes,
cnpj_completo). What only speeds reading up (cnaes_secundarias as rows, then the search
indexes) runs in this job, after `cnpj_current` moved: `cnpj-assets load` runs it right
after its publication, and the sensor here runs it after a publication made anywhere
else (the UI, a backfill, the landing sensor's runs). Until it has run, the read side
answers from the loaded columns (the `cnpj_current.cnaes_secundarias` view splits the
establishments' column, search scans where an index would seek).
"""

from datetime import UTC, datetime

import dagster as dg

from cnpj_assets.defs.assets import GROUP
from cnpj_assets.defs.job_executor import release_executor

AFTER_PUBLICATION_GROUP = "cnpj_after_publication"
PUBLICATION_KEY = dg.AssetKey([GROUP, "cnpj_current"])
SENSOR_NAME = "cnpj_after_publication_sensor"

after_publication_job = dg.define_asset_job(
    "after_publication",
    selection=dg.AssetSelection.groups(AFTER_PUBLICATION_GROUP),
    description="What speeds up reading a release (cnaes_secundarias, search indexes).",
    executor_def=release_executor(),
)


def ran_since(instance: dg.DagsterInstance, release: str, timestamp: float) -> bool:
    """Whether a run of this job for the release was created at or after `timestamp` (the
    CLI's load runs it right after its publication: no second build)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=after_publication_job.name,
            tags={"dagster/partition": release},
            created_after=datetime.fromtimestamp(timestamp, tz=UTC),
        ),
        limit=1,
    )
    return bool(runs)


@dg.asset_sensor(
    name=SENSOR_NAME,
    asset_key=PUBLICATION_KEY,
    job=after_publication_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each publication of a release, builds what speeds up reading it.",
)
def after_publication_sensor(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.SensorResult:
    event = asset_event.dagster_event
    release = event.partition if event is not None else None
    if release is None:
        return dg.SensorResult(skip_reason="a publication without a release partition")
    if ran_since(context.instance, release, asset_event.timestamp):
        return dg.SensorResult(skip_reason=f"{release}: already built after its publication")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{release}:{asset_event.run_id}:{asset_event.timestamp}",
                partition_key=release,
            )
        ]
    )
