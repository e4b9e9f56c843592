"""The landing sensor: a release copied into `<landing>/<YYYY-MM>/` loads by itself.

Each tick it snapshots every release folder. A release whose 37 zips are all there and
stable (unchanged since the last tick, or a `_SUCCESS` marker newer than every zip) gets
its `cnpj_release` partition and a run of `load_release`; a zip that changes afterwards
re-runs only its table. The JSON cursor keeps, per release, the last snapshot (for
stability) and the fingerprint each table was last requested for; the run keys are made
of those fingerprints, so a lost cursor or a repeated tick never runs the same files twice.

A table seen for the first time that Dagster already materialized after its files were
written (by the download-and-load job, `cnpj-assets load` or a run from the UI) is taken
as loaded, not loaded again.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from cnpj_assets.defs.assets import GROUP, RELEASES, load_release_job
from cnpj_assets.defs.resources import LandingResource
from cnpj_assets.landing import list_releases
from cnpj_assets.snapshot import FolderSnapshot, expected_zip_names, take_snapshot
from cnpj_assets.specs import TABLES

LANDING_SENSOR_NAME = "cnpj_landing_sensor"
PARTITION_TAG = "dagster/partition"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
MAX_NAMES_IN_REASON = 5


@dataclass
class ReleaseState:
    """What the cursor remembers of one release."""

    files: dict[str, list[int]] = field(default_factory=dict)
    requested: dict[str, str] = field(default_factory=dict)  # table -> files fingerprint


def load_cursor(cursor: str | None) -> dict[str, ReleaseState]:
    if not cursor:
        return {}
    data: dict[str, Any] = json.loads(cursor)
    return {
        release: ReleaseState(files=state["files"], requested=state["requested"])
        for release, state in data.get("releases", {}).items()
    }


def dump_cursor(states: dict[str, ReleaseState]) -> str:
    releases = {
        release: {"files": state.files, "requested": state.requested}
        for release, state in sorted(states.items())
    }
    return json.dumps({"version": 1, "releases": releases}, sort_keys=True)


def unfinished_run(instance: dg.DagsterInstance, release: str) -> dg.DagsterRun | None:
    """A run of this release that has not finished: it may still be writing the files."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={PARTITION_TAG: release}, statuses=UNFINISHED), limit=1
    )
    return runs[0] if runs else None


def materialized_since(
    instance: dg.DagsterInstance, table: str, release: str, mtime_ns: int
) -> bool:
    """Whether the table's partition was materialized after its newest file was written."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey([GROUP, table]), asset_partitions=[release]),
        limit=1,
    )
    return bool(result.records) and result.records[0].timestamp * 1e9 >= mtime_ns


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_IN_REASON])
    more = len(names) - MAX_NAMES_IN_REASON
    return shown + (f" and {more} more" if more > 0 else "")


def _settling_note(
    release: str, files: dict[str, list[int]], previous: dict[str, list[int]]
) -> str:
    if not previous:
        return (
            f"{release}: all {len(files)} files found, loading once they stand still for a "
            "tick (or a _SUCCESS marker appears)"
        )
    moving = [name for name, stat in files.items() if previous.get(name) != stat]
    return f"{release}: {_names(moving)} changed since the last tick, waiting for them to settle"


@dataclass
class _Tick:
    """One evaluation: the requests and the reasons it collects, release by release."""

    instance: dg.DagsterInstance
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    new_partitions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def visit(self, snap: FolderSnapshot, state: ReleaseState) -> ReleaseState:
        """Decide what one release needs; return what the cursor keeps of it."""
        release, previous = snap.release, state.files
        state = ReleaseState({k: list(v) for k, v in snap.files.items()}, dict(state.requested))
        if not snap.is_complete:
            missing = snap.missing()
            self.notes.append(
                f"{release}: {len(snap.files)} of {len(expected_zip_names())} files, "
                f"waiting for {_names(missing)}"
            )
            return state
        fingerprints = {table: snap.table_fingerprint(table) for table in TABLES}
        changed = [t for t in TABLES if state.requested.get(t) != fingerprints[t]]
        if not changed:
            return state
        if not (snap.marked_complete or state.files == previous):
            self.notes.append(_settling_note(release, state.files, previous))
            return state
        run = unfinished_run(self.instance, release)
        if run is not None:
            self.notes.append(f"{release}: waiting for run {run.run_id} ({run.job_name})")
            return state
        for table in changed:
            first_sight = table not in state.requested
            if first_sight and materialized_since(
                self.instance, table, release, snap.newest_mtime_ns(table)
            ):
                state.requested[table] = fingerprints[table]
        to_load = [t for t in changed if state.requested.get(t) != fingerprints[t]]
        if not to_load:
            self.notes.append(f"{release}: already loaded from these files")
            return state
        self._request(snap, to_load, fingerprints)
        state.requested.update({table: fingerprints[table] for table in to_load})
        return state

    def _request(
        self, snap: FolderSnapshot, tables: list[str], fingerprints: dict[str, str]
    ) -> None:
        release = snap.release
        if not self.instance.has_dynamic_partition(RELEASES.name, release):
            self.new_partitions.append(release)
        if len(tables) == len(TABLES):
            self.run_requests.append(
                dg.RunRequest(
                    run_key=f"release:{release}:{snap.fingerprint()}", partition_key=release
                )
            )
            return
        self.run_requests += [
            dg.RunRequest(
                run_key=f"table:{release}:{table}:{fingerprints[table]}",
                partition_key=release,
                asset_selection=[dg.AssetKey([GROUP, table])],
            )
            for table in tables
        ]


def evaluate_landing(
    instance: dg.DagsterInstance, landing_dir: Path, cursor: str | None
) -> dg.SensorResult:
    """The landing sensor's decision, apart from Dagster's decorator so it reads plainly."""
    states = load_cursor(cursor)
    tick = _Tick(instance)
    kept = {}
    for release in list_releases(landing_dir):
        snap = take_snapshot(landing_dir / release, release)
        kept[release] = tick.visit(snap, states.get(release, ReleaseState()))
    new_cursor = dump_cursor(kept)
    if not tick.run_requests:
        reason = "; ".join(tick.notes) or f"no new or changed release in {landing_dir}"
        return dg.SensorResult(skip_reason=reason, cursor=new_cursor)
    partitions = (
        [dg.AddDynamicPartitionsRequest(RELEASES.name, tick.new_partitions)]
        if tick.new_partitions
        else []
    )
    return dg.SensorResult(
        run_requests=tick.run_requests,
        dynamic_partitions_requests=partitions,
        cursor=new_cursor,
    )


@dg.sensor(
    name=LANDING_SENSOR_NAME,
    job=load_release_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches <landing>/<YYYY-MM>/: loads a release once its 37 zips are in and stable "
        "(unchanged for one tick, or a _SUCCESS marker), and reloads only the table of a zip "
        "that changes later."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.SensorResult:
    result = evaluate_landing(context.instance, Path(landing.landing_dir), context.cursor)
    if result.run_requests:
        for request in result.run_requests:
            context.log.info(f"requesting {request.run_key}")
    return result
