"""The landing sensor and the share sensor, evaluated the way the daemon does (evaluate_tick
on a build_sensor_context with the code location's definitions and a real instance)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData

from cnpj_assets.definitions import defs
from cnpj_assets.defs.assets import RELEASES
from cnpj_assets.defs.resources import LandingResource
from cnpj_assets.defs.sensors import ReleaseState, dump_cursor, landing_sensor, load_cursor
from cnpj_assets.snapshot import SUCCESS_MARKER
from cnpj_assets.source import ReceitaSourceResource, share_sensor
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.webdav_server import FakeShare

RELEASE = "2033-01"
NEXT = "2033-02"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("written")
    write_release(release=RELEASE, rows=100, out_dir=folder, seed=5)
    write_release(release=NEXT, rows=100, out_dir=folder, seed=6)
    return folder


@pytest.fixture
def landing(written: Path, tmp_path: Path) -> Path:
    """A landing folder holding RELEASE, all 37 zips, mtimes one minute apart from now."""
    folder = tmp_path / "landing" / RELEASE
    folder.mkdir(parents=True)
    for path in (written / RELEASE).glob("*.zip"):
        (folder / path.name).write_bytes(path.read_bytes())
    return tmp_path / "landing"


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
    resources: dict[str, dg.ConfigurableResource],
) -> SensorExecutionData:
    """One tick as the daemon runs it, then the partitions it asked for are added."""
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        definitions=defs,
        cursor=cursor,
        resources=resources,
    ) as context:
        result = sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def landing_tick(
    instance: dg.DagsterInstance, landing: Path, cursor: str | None = None
) -> SensorExecutionData:
    return tick(
        landing_sensor, instance, cursor, {"landing": LandingResource(landing_dir=str(landing))}
    )


def mark_success(landing: Path, release: str = RELEASE) -> None:
    marker = landing / release / SUCCESS_MARKER
    marker.write_text("")
    newest = max(p.stat().st_mtime_ns for p in (landing / release).glob("*.zip"))
    os.utime(marker, ns=(newest + 1_000_000_000, newest + 1_000_000_000))


def touch(path: Path, seconds_later: int) -> None:
    """Change a zip the way a new copy would: new bytes and a later mtime."""
    path.write_bytes(path.read_bytes() + b"\0")
    mtime = path.stat().st_mtime_ns + seconds_later * 1_000_000_000
    os.utime(path, ns=(mtime, mtime))


def test_a_complete_release_with_success_marker_loads_at_once(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    mark_success(landing)
    result = landing_tick(instance, landing)
    (request,) = result.run_requests
    assert request.partition_key == RELEASE
    assert landing_sensor.job_name == "load_release" and request.asset_selection is None
    assert request.tags["dagster/partition"] == RELEASE
    assert request.run_key.startswith(f"release:{RELEASE}:")
    (added,) = result.dynamic_partitions_requests
    assert added.partitions_def_name == RELEASES.name and list(added.partition_keys) == [RELEASE]
    assert instance.has_dynamic_partition(RELEASES.name, RELEASE)


def test_without_a_marker_the_files_must_stand_still_for_one_tick(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    first = landing_tick(instance, landing)
    assert not first.run_requests
    assert first.skip_message == (
        f"{RELEASE}: all 37 files found, loading once they stand still for a tick "
        "(or a _SUCCESS marker appears)"
    )
    second = landing_tick(instance, landing, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [RELEASE]


def test_an_incomplete_release_waits_and_says_for_what(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    for name in (
        "Socios3.zip",
        "Socios4.zip",
        "Simples.zip",
        "Paises.zip",
        "Cnaes.zip",
        "Empresas9.zip",
        "Motivos.zip",
    ):
        (landing / RELEASE / name).unlink()
    mark_success(landing)
    result = landing_tick(instance, landing)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert result.skip_message == (
        f"{RELEASE}: 30 of 37 files, waiting for Cnaes.zip, Motivos.zip, Paises.zip, "
        "Empresas9.zip, Socios3.zip and 2 more"
    )
    assert not instance.has_dynamic_partition(RELEASES.name, RELEASE)


def test_nothing_new_is_a_skip_with_a_reason(instance: dg.DagsterInstance, landing: Path) -> None:
    mark_success(landing)
    loaded = landing_tick(instance, landing)
    again = landing_tick(instance, landing, loaded.cursor)
    assert not again.run_requests
    assert again.skip_message == f"no new or changed release in {landing}"
    empty = landing_tick(instance, landing.parent / "nothing-here")
    assert empty.skip_message.startswith("no new or changed release")


def test_a_changed_zip_reloads_only_its_table(instance: dg.DagsterInstance, landing: Path) -> None:
    mark_success(landing)
    loaded = landing_tick(instance, landing)
    touch(landing / RELEASE / "Empresas3.zip", seconds_later=60)
    settling = landing_tick(instance, landing, loaded.cursor)
    assert not settling.run_requests
    assert settling.skip_message == (
        f"{RELEASE}: Empresas3.zip changed since the last tick, waiting for them to settle"
    )
    changed = landing_tick(instance, landing, settling.cursor)
    (request,) = changed.run_requests
    assert request.asset_selection == [dg.AssetKey(["cnpj", "empresas"])]
    assert request.partition_key == RELEASE and request.run_key.startswith(
        f"table:{RELEASE}:empresas:"
    )
    assert not changed.dynamic_partitions_requests
    after = landing_tick(instance, landing, changed.cursor)
    assert not after.run_requests


def test_over_many_ticks_each_release_and_each_change_runs_once(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    """Twelve ticks in a row, each with the cursor the last one left (as the daemon runs
    them): the release once, a changed zip's table once, nothing else."""
    requests: list[dg.RunRequest] = []
    cursor = None
    for number in range(12):
        if number == 6:
            touch(landing / RELEASE / "Socios2.zip", seconds_later=60)
        result = landing_tick(instance, landing, cursor)
        requests += result.run_requests
        cursor = result.cursor or cursor
    assert [(r.partition_key, r.asset_selection) for r in requests] == [
        (RELEASE, None),
        (RELEASE, [dg.AssetKey(["cnpj", "socios"])]),
    ]
    assert len({r.run_key for r in requests}) == 2


def test_run_keys_depend_on_the_files_only(instance: dg.DagsterInstance, landing: Path) -> None:
    mark_success(landing)
    first = landing_tick(instance, landing).run_requests[0].run_key
    assert landing_tick(instance, landing).run_requests[0].run_key == first
    touch(landing / RELEASE / "Cnaes.zip", seconds_later=60)
    mark_success(landing)
    assert landing_tick(instance, landing).run_requests[0].run_key != first


def test_the_cursor_round_trips(instance: dg.DagsterInstance, landing: Path) -> None:
    mark_success(landing)
    cursor = landing_tick(instance, landing).cursor
    states = load_cursor(cursor)
    assert set(states) == {RELEASE}
    assert len(states[RELEASE].files) == 37 and set(states[RELEASE].requested) == set(TABLES)
    assert dump_cursor(states) == cursor
    assert json.loads(cursor)["version"] == 1
    assert load_cursor(dump_cursor({"x": ReleaseState()})) == {"x": ReleaseState()}


def test_a_release_already_materialized_from_these_files_is_not_loaded_again(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    mark_success(landing)
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    for table in TABLES:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["cnpj", table]), partition=RELEASE)
        )
    result = landing_tick(instance, landing)
    assert not result.run_requests
    assert result.skip_message == f"{RELEASE}: already loaded from these files"


def test_a_release_with_a_run_in_progress_waits_for_it(
    instance: dg.DagsterInstance, landing: Path
) -> None:
    mark_success(landing)
    run = instance.add_run(
        dg.DagsterRun(
            job_name="download_and_load_release",
            tags={"dagster/partition": RELEASE},
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    result = landing_tick(instance, landing)
    assert not result.run_requests
    assert (
        result.skip_message
        == f"{RELEASE}: waiting for run {run.run_id} (download_and_load_release)"
    )


@pytest.fixture
def share(written: Path) -> Iterator[FakeShare]:
    served = FakeShare.from_landing(written, [RELEASE]).start()
    yield served
    served.stop()


def share_tick(
    instance: dg.DagsterInstance, share: FakeShare, cursor: str | None = None
) -> SensorExecutionData:
    receita = ReceitaSourceResource(share_url=share.share_url, legacy_url="")
    return tick(share_sensor, instance, cursor, {"receita": receita})


def test_the_share_sensor_is_off_by_default_and_the_landing_sensor_on() -> None:
    assert share_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert landing_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_share_sensor_fetches_the_newest_month_once(
    instance: dg.DagsterInstance, share: FakeShare, written: Path
) -> None:
    share.releases["2032-12"] = dict(share.releases[RELEASE])
    first = share_tick(instance, share)
    (request,) = first.run_requests
    assert (request.partition_key, request.run_key) == (RELEASE, f"download:{RELEASE}")
    assert share_sensor.job_name == "download_and_load_release"
    assert instance.has_dynamic_partition(RELEASES.name, RELEASE)
    assert json.loads(first.cursor) == {"seen": ["2032-12", RELEASE]}
    again = share_tick(instance, share, first.cursor)
    assert not again.run_requests
    assert again.skip_message == f"no new month on {share.share_url} (latest {RELEASE})"


def test_the_share_sensors_first_tick_takes_only_the_newest_month_even_if_loaded(
    instance: dg.DagsterInstance, share: FakeShare
) -> None:
    """Switched on after the newest month was loaded by hand, it starts no older month."""
    for older in ("2032-11", "2032-12"):
        share.releases[older] = dict(share.releases[RELEASE])
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    first = share_tick(instance, share)
    assert not first.run_requests
    assert first.skip_message == "first tick: 2 older months recorded as seen, not fetched"
    assert json.loads(first.cursor) == {"seen": ["2032-11", "2032-12", RELEASE]}
    assert not share_tick(instance, share, first.cursor).run_requests


def test_the_share_sensor_waits_until_all_zips_are_listed(
    instance: dg.DagsterInstance, share: FakeShare, written: Path
) -> None:
    first = share_tick(instance, share)
    share.releases[NEXT] = {p.name: p.read_bytes() for p in (written / NEXT).glob("*.zip")}
    share.hidden = {"Socios9.zip", "Simples.zip"}
    waiting = share_tick(instance, share, first.cursor)
    assert not waiting.run_requests
    assert waiting.skip_message == f"{NEXT}: the share lists 35 of 37 zips, waiting"
    share.hidden = set()
    ready = share_tick(instance, share, waiting.cursor)
    assert [r.partition_key for r in ready.run_requests] == [NEXT]
