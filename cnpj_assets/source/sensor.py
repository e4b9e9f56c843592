"""The share sensor (off by default): a month the Receita Federal publishes downloads and
loads by itself.

It polls the share hourly (releases are monthly; a poll is one or two PROPFINDs). A month
is new when the cursor has not seen it and it is not a `cnpj_release` partition yet. On
its first tick the sensor takes only the newest month and records the older ones as seen:
the share keeps years of history, and backfilling them is a choice to make in the UI, not
a side effect of switching the sensor on. A new month is requested only once the share
lists all 37 zips, since the Receita uploads a release over hours.
"""

import json

import dagster as dg

from cnpj_assets.defs.assets import RELEASES
from cnpj_assets.snapshot import expected_zip_names
from cnpj_assets.source.assets import download_and_load_job
from cnpj_assets.source.resource import ReceitaSourceResource

SHARE_SENSOR_NAME = "receita_share_sensor"


def _listed_count(receita: ReceitaSourceResource, release: str) -> int:
    listed = {f.name.lower() for f in receita.list_files(release)}
    return sum(name.lower() in listed for name in expected_zip_names())


def evaluate_share(
    receita: ReceitaSourceResource, known_partitions: set[str], cursor: str | None
) -> dg.SensorResult:
    """The share sensor's decision, apart from the decorator so tests can read it plainly."""
    seen = set(json.loads(cursor)["seen"]) if cursor else set()
    months = receita.list_releases()
    notes = []
    if cursor is None and len(months) > 1:
        # The newest month of the share, never the newest one not loaded yet: with the
        # newest already a partition, the first tick has nothing to fetch.
        notes.append(f"first tick: {len(months) - 1} older months recorded as seen, not fetched")
        seen.update(months[:-1])
    seen.update(m for m in months if m in known_partitions)
    unseen = [m for m in months if m not in seen]
    requests = []
    expected = len(expected_zip_names())
    for month in unseen:
        listed = _listed_count(receita, month)
        if listed < expected:
            notes.append(f"{month}: the share lists {listed} of {expected} zips, waiting")
            continue
        requests.append(dg.RunRequest(run_key=f"download:{month}", partition_key=month))
        seen.add(month)
    new_cursor = json.dumps({"seen": sorted(seen)})
    if not requests:
        latest = months[-1] if months else "none"
        reason = "; ".join(notes) or f"no new month on {receita.share_url} (latest {latest})"
        return dg.SensorResult(skip_reason=reason, cursor=new_cursor)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            dg.AddDynamicPartitionsRequest(RELEASES.name, [r.partition_key for r in requests])
        ],
        cursor=new_cursor,
    )


@dg.sensor(
    name=SHARE_SENSOR_NAME,
    job=download_and_load_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Polls the Receita Federal share hourly; a month it has not seen, once all 37 zips are "
        "listed, gets its partition and a download-and-load run. Off by default: it reaches "
        "the internet and starts 6 GB downloads."
    ),
)
def share_sensor(
    context: dg.SensorEvaluationContext, receita: ReceitaSourceResource
) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(RELEASES.name))
    return evaluate_share(receita, known, context.cursor)
