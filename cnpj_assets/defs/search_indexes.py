"""`cnpj/search_indexes`: the search indexes of a published release, after its publication.

A job of its own (`build_search_indexes`), requested by a sensor when `cnpj/cnpj_current`
publishes a release and run by `cnpj-assets load` right after its job: the publication
never waits for them, and `CREATE INDEX CONCURRENTLY` keeps `cnpj_current`'s readers from
waiting either (read.search_indexes). Its group is not the load's, so `load_release`
does not select it.
"""

from collections.abc import Iterator

import dagster as dg

from cnpj_assets.defs import plotted
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.resources import PostgresResource
from cnpj_assets.read.search_indexes import build_search_indexes

SEARCH_GROUP = "cnpj_search"
PUBLICATION_KEY = dg.AssetKey([GROUP, "cnpj_current"])


@dg.asset(
    name="search_indexes",
    key_prefix=[GROUP],
    group_name=SEARCH_GROUP,
    partitions_def=RELEASES,
    deps=[PUBLICATION_KEY],
    description=(
        "Indexes of `cnpj-assets search` on the release's children (built concurrently, "
        "after the publication); search answers without them, slower."
    ),
    kinds={"postgres"},
)
def search_indexes(
    context: dg.AssetExecutionContext, postgres: PostgresResource
) -> dg.MaterializeResult:
    built = build_search_indexes(postgres.url(), context.partition_key, context.log.info)
    return dg.MaterializeResult(
        metadata={
            "indexes": dg.MetadataValue.md(
                "| index | seconds | MiB |\n|---|---|---|\n"
                + "\n".join(
                    f"| {b.name} | {b.seconds:.1f} | {b.bytes / 2**20:,.0f} |" for b in built
                )
            ),
            "seconds": plotted.seconds(sum(b.seconds for b in built)),
            "bytes": dg.MetadataValue.int(sum(b.bytes for b in built)),
        }
    )


build_search_indexes_job = dg.define_asset_job(
    "build_search_indexes",
    selection=dg.AssetSelection.assets(search_indexes),
    description="Build the search indexes of a published release (after its publication).",
)


@dg.asset_sensor(
    asset_key=PUBLICATION_KEY,
    job=build_search_indexes_job,
    name="search_indexes_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def search_indexes_sensor(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> Iterator[dg.RunRequest]:
    """A release published by `cnpj/cnpj_current` gets its search indexes."""
    event = asset_event.dagster_event
    if event is None or event.partition is None:
        return
    materialization = event.step_materialization_data.materialization
    published = materialization.metadata.get("published")
    if published is None or not published.value:
        return
    yield dg.RunRequest(
        run_key=f"{event.partition}:{asset_event.run_id}", partition_key=event.partition
    )
