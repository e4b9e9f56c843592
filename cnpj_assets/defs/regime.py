"""The tax-regime folder in Dagster: download, load, checks, a job and a sensor.

Partitioned by snapshot (`regime_snapshot`, YYYY-MM-DD: the day the share last changed
the folder), apart from the monthly releases: the folder changes about once a year and
loads on its own. The load is the monthly tables' (audit contexts, `_subbatch_id`
lineage, rejects quarantine, swap) with the folder's spec; the same checks follow it.
"""

import json
import time
from pathlib import Path

import dagster as dg
import psycopg

from cnpj_assets.defs.assets import GROUP, column_schema, materialization_metadata
from cnpj_assets.defs.checks import build_table_checks
from cnpj_assets.defs.resources import LandingResource, LoadSettingsResource, PostgresResource
from cnpj_assets.load.loader import RunInfo, TableLoader
from cnpj_assets.regime.current import point_current
from cnpj_assets.regime.landing import discover_snapshot, snapshot_folder
from cnpj_assets.regime.share import download_snapshot, list_folder
from cnpj_assets.regime.spec import FOLDER, REGIME_TRIBUTARIO
from cnpj_assets.runs.run_log import RunLogOrStderr
from cnpj_assets.runs.stopping import stop_request
from cnpj_assets.source.assets import download_metadata
from cnpj_assets.source.client import SourceError
from cnpj_assets.source.resource import ReceitaSourceResource

SNAPSHOTS = dg.DynamicPartitionsDefinition(name="regime_snapshot")
REGIME_GROUP = "regime_tributario"
FILES_KEY = dg.AssetKey([GROUP, "regime_tributario_files"])
REGIME_KEY = dg.AssetKey([GROUP, REGIME_TRIBUTARIO.name])
SENSOR_NAME = "regime_tributario_sensor"


@dg.asset(
    key=FILES_KEY,
    group_name=REGIME_GROUP,
    partitions_def=SNAPSHOTS,
    kinds={"http"},
    description=(
        "The share's regime_tributario zips (matched by pattern, split parts included), "
        "downloaded by the monthly release's downloader into "
        "<landing>/regime_tributario/<snapshot>/."
    ),
)
def regime_tributario_files(
    context: dg.AssetExecutionContext, receita: ReceitaSourceResource, landing: LandingResource
) -> dg.MaterializeResult:
    snapshot = context.partition_key
    started = time.monotonic()
    listing = list_folder(receita.client())
    if listing.snapshot != snapshot:
        raise dg.Failure(
            f"the share's {FOLDER} is now snapshot {listing.snapshot} (modified "
            f"{listing.modified}), not {snapshot}: the share keeps no older snapshot",
            allow_retries=False,
        )
    landing_dir = Path(landing.landing_dir)
    outcomes = download_snapshot(
        receita.client(), listing, landing_dir, receita.download_settings(), context.log.info
    )
    metadata = download_metadata(
        outcomes, time.monotonic() - started, snapshot_folder(landing_dir, snapshot)
    )
    metadata["modified"] = dg.MetadataValue.text(listing.modified)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=REGIME_KEY,
    group_name=REGIME_GROUP,
    partitions_def=SNAPSHOTS,
    deps=[FILES_KEY],
    description=REGIME_TRIBUTARIO.description + "\n\n" + REGIME_TRIBUTARIO.notes,
    metadata={"dagster/column_schema": column_schema(REGIME_TRIBUTARIO)},
    kinds={"postgres", "duckdb"},
)
def regime_tributario(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    landing: LandingResource,
    load_settings: LoadSettingsResource,
) -> dg.MaterializeResult:
    """Load the snapshot, swap it in, then point cnpj_current.regime_tributario at the newest."""
    snapshot = context.partition_key
    files = discover_snapshot(Path(landing.landing_dir), snapshot)
    stop = stop_request(context.run.run_id)
    progress = RunLogOrStderr(context.log, stop)
    settings = load_settings.settings()
    summary = TableLoader(postgres.url(), settings, progress=progress, stop=stop).load_files(
        REGIME_TRIBUTARIO,
        snapshot,
        files,
        RunInfo(context.asset_key.to_user_string(), snapshot, context.run.run_id),
    )
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        current = point_current(connection, settings.lock_policy(), progress)
    metadata = materialization_metadata(REGIME_TRIBUTARIO, summary)
    metadata["current_snapshot"] = dg.MetadataValue.text(current or "")
    return dg.MaterializeResult(metadata=metadata)


REGIME_CHECKS = build_table_checks(REGIME_TRIBUTARIO, SNAPSHOTS)

regime_job = dg.define_asset_job(
    "regime_tributario",
    selection=dg.AssetSelection.assets(FILES_KEY, REGIME_KEY),
    description="Download one snapshot of the regime_tributario folder, load and check it.",
    executor_def=dg.in_process_executor,
)

load_regime_job = dg.define_asset_job(
    "load_regime_tributario",
    selection=dg.AssetSelection.assets(REGIME_KEY),
    description="Load and check one snapshot of the regime_tributario folder in the landing zone.",
    executor_def=dg.in_process_executor,
)


def evaluate_folder(
    receita: ReceitaSourceResource, known: set[str], cursor: str | None
) -> dg.SensorResult:
    """One run per snapshot the sensor has not seen and Dagster does not know yet."""
    seen = set(json.loads(cursor)["seen"]) if cursor else set()
    try:
        listing = list_folder(receita.client())
    except SourceError as error:  # the folder is being replaced: wait for it to be whole
        return dg.SensorResult(skip_reason=str(error), cursor=cursor)
    snapshot = listing.snapshot
    new = snapshot not in seen and snapshot not in known
    seen.add(snapshot)
    new_cursor = json.dumps({"seen": sorted(seen)})
    if not new:
        return dg.SensorResult(
            skip_reason=f"{FOLDER} is still snapshot {snapshot} ({listing.modified})",
            cursor=new_cursor,
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"regime:{snapshot}", partition_key=snapshot)],
        dynamic_partitions_requests=[SNAPSHOTS.build_add_request([snapshot])],
        cursor=new_cursor,
    )


@dg.sensor(
    name=SENSOR_NAME,
    job=regime_job,
    minimum_interval_seconds=24 * 3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Polls the share's regime_tributario folder daily; a new modification date is a new "
        "snapshot: its partition and one download-and-load run. Off by default: it reaches "
        "the internet."
    ),
)
def regime_sensor(
    context: dg.SensorEvaluationContext, receita: ReceitaSourceResource
) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(SNAPSHOTS.name))
    return evaluate_folder(receita, known, context.cursor)
