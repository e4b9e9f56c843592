"""`cnpj/parquet`: every published release as Parquet files, with its manifest.

It runs in a job of its own (`export_parquet`), requested by a sensor when `cnpj_current`
materializes a release, so the load job never waits for it. A refused release never
materializes `cnpj_current`, so the sensor leaves it; launched by hand, the asset still
refuses it unless `force` is set. The destination is `CNPJ_PARQUET_URL` (any URL
`pyarrow.fs` resolves) or `$CNPJ_HOME/parquet`; the run's `url` setting overrides both.
"""

import dagster as dg

from cnpj_assets.defs import plotted
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.publication import cnpj_current
from cnpj_assets.defs.resources import PostgresResource
from cnpj_assets.export.destination import resolve, shown_url
from cnpj_assets.export.formats import PARQUET
from cnpj_assets.export.release import ReleaseExport, export_release

EXPORT_GROUP = "cnpj_export"
PARQUET_SENSOR_NAME = "cnpj_parquet_sensor"
SENSOR_BATCH = 100  # publications handled per tick


class ParquetConfig(dg.Config):
    """Where to write, and whether to export a release its checks refused."""

    url: str = ""  # a folder or a pyarrow.fs URL; empty: CNPJ_PARQUET_URL or $CNPJ_HOME/parquet
    force: bool = False  # export although the release was not published


def export_metadata(export: ReleaseExport, url: str) -> dict[str, dg.MetadataValue]:
    """The totals the UI plots, then each table's rows and bytes, and where it all is."""
    rows = sum(t.rows for t in export.tables if t.table_load_id is not None)
    size = sum(t.bytes for t in export.tables)
    table = ["| table | files | rows | bytes | seconds |", "|---|---:|---:|---:|---:|"]
    table += [
        f"| {t.name} | {len(t.files)} | {t.rows:,} | {t.bytes:,} | {t.seconds:.1f} |"
        for t in export.tables
    ]
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "bytes": dg.MetadataValue.int(size),
        "seconds": plotted.seconds(export.seconds),
        "rows_per_second": plotted.rate(rows, export.seconds),
        "tables": dg.MetadataValue.md("\n".join(table)),
        "destination": dg.MetadataValue.text(shown_url(url)),
        "manifest": dg.MetadataValue.text(export.manifest_path),
    }


@dg.asset(
    name="parquet",
    key_prefix=[GROUP],
    group_name=EXPORT_GROUP,
    partitions_def=RELEASES,
    deps=[cnpj_current.key],
    description=(
        "The published release as Parquet: one folder per table (table=T/release=R/), "
        "ZSTD, sorted by the key, with _subbatch_id and the audit's lineage beside them, "
        "and _manifests/release=R/manifest.json (files, rows, sha256, source zips, checks)."
    ),
    kinds={"parquet"},
)
def parquet(
    context: dg.AssetExecutionContext, postgres: PostgresResource, config: ParquetConfig
) -> dg.MaterializeResult:
    destination = resolve(config.url or None)
    export = export_release(
        postgres.url(),
        context.partition_key,
        destination,
        PARQUET,
        run_id=context.run.run_id,
        force=config.force,
        say=context.log.info,
    )
    return dg.MaterializeResult(metadata=export_metadata(export, destination.url))


export_parquet_job = dg.define_asset_job(
    "export_parquet",
    selection=[parquet.key],
    description="Write one published release as Parquet files with its manifest.",
)


@dg.sensor(
    name=PARQUET_SENSOR_NAME,
    job=export_parquet_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Exports each release to Parquet once cnpj_current has published it.",
)
def parquet_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One export run per materialization of cnpj_current, in order; the cursor is the
    last materialization's storage id, the run key names it, so none runs twice."""
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=cnpj_current.key, after_storage_id=after),
        limit=SENSOR_BATCH,
        ascending=True,
    )
    records = [r for r in found.records if r.partition_key]
    requests = [
        dg.RunRequest(run_key=f"{r.partition_key}:{r.storage_id}", partition_key=r.partition_key)
        for r in records
    ]
    cursor = str(found.records[-1].storage_id) if found.records else context.cursor
    return dg.SensorResult(run_requests=requests, cursor=cursor)
