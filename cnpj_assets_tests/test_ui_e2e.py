"""The UI path end to end: dagster-webserver and dagster-daemon on the PostgreSQL instance.

A load launched through the GraphQL API (the UI's own API) runs on the daemon and its
materialization metadata reads back; the share sensor, switched on through the API like a
user would in the UI, downloads a month from a fake share on 127.0.0.1 and loads it. Where
Chromium is installed, the asset catalog is rendered headless and must list the tables.
Every process is started in its own session and stopped by its process group.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.sensors import LANDING_SENSOR_NAME
from cnpj_assets.source.sensor import SHARE_SENSOR_NAME
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.dagster_processes import (
    RUN_SECONDS,
    Dagster,
    launch_load,
    row_count_metadata,
    running_dagster,
    stop_group,
    wait_for,
    wait_for_success,
)
from cnpj_assets_tests.helpers import count_rows
from cnpj_assets_tests.webdav_server import FakeShare

LOADED = "2032-01"  # in the landing folder from the start; launched through GraphQL
PUBLISHED = "2032-02"  # only on the fake share; the share sensor fetches it


@pytest.fixture(scope="module")
def dagster(
    postgres_server: ServerUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dagster]:
    landing = tmp_path_factory.mktemp("e2e_landing")
    write_release(release=LOADED, rows=500, out_dir=landing, seed=21)
    origin = tmp_path_factory.mktemp("e2e_share")
    # the next month as big as the first: the release job publishes only a release whose
    # tables did not shrink (the drift guard)
    write_release(release=PUBLISHED, rows=500, out_dir=origin, seed=21)
    logs = tmp_path_factory.mktemp("e2e_logs")
    share = FakeShare.from_landing(origin, [PUBLISHED]).start()
    env = {"CNPJ_RECEITA_URL": share.share_url, "CNPJ_RECEITA_LEGACY_URL": ""}
    try:
        with running_dagster(postgres_server, landing, logs, env) as dagster:
            yield dagster
    finally:
        share.stop()


SENSORS = """query($repo: RepositorySelector!) { sensorsOrError(repositorySelector: $repo) {
  ... on Sensors { results { name defaultStatus sensorState { id status } } } } }"""

RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName } } } }"""


def test_the_sensors_show_and_switch_in_the_ui(dagster: Dagster) -> None:
    sensors = {
        s["name"]: s
        for s in dagster.graphql(SENSORS, repo=dagster.repository())["sensorsOrError"]["results"]
    }
    assert sensors[LANDING_SENSOR_NAME]["defaultStatus"] == "RUNNING"
    assert sensors[SHARE_SENSOR_NAME]["defaultStatus"] == "STOPPED"
    assert sensors[SHARE_SENSOR_NAME]["sensorState"]["status"] == "STOPPED"
    stopped = dagster.graphql(
        "mutation($id: String) { stopSensor(id: $id) { ... on StopSensorMutationResult { instigationState { status } } } }",
        id=sensors[LANDING_SENSOR_NAME]["sensorState"]["id"],
    )
    assert stopped["stopSensor"]["instigationState"]["status"] == "STOPPED"


def test_a_load_launched_through_graphql_succeeds_and_reports_row_counts(
    dagster: Dagster, postgres_server: ServerUrl
) -> None:
    run_id = launch_load(dagster, LOADED)
    wait_for_success(dagster, run_id)
    for table in TABLES:
        rows, materialized_by = row_count_metadata(dagster, table, LOADED)
        assert materialized_by == run_id
        assert rows == count_rows(postgres_server, table, LOADED)
    assert row_count_metadata(dagster, "empresas", LOADED)[0] > 0


def test_the_share_sensor_switched_on_downloads_and_loads_a_new_month(
    dagster: Dagster, postgres_server: ServerUrl
) -> None:
    selector = {**dagster.repository(), "sensorName": SHARE_SENSOR_NAME}
    started = dagster.graphql(
        """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
             ... on Sensor { sensorState { status } } } }""",
        selector=selector,
    )
    assert started["startSensor"]["sensorState"]["status"] == "RUNNING"
    try:
        runs_filter = {"tags": [{"key": "dagster/partition", "value": PUBLISHED}]}
        run = wait_for(
            f"the share sensor to launch a run for {PUBLISHED}",
            lambda: dagster.graphql(RUNS, filter=runs_filter)["runsOrError"]["results"],
            RUN_SECONDS,
        )[0]
        assert run["jobName"] == "download_and_load_release"
        wait_for_success(dagster, run["runId"])
    finally:
        dagster.graphql(
            "mutation($id: String) { stopSensor(id: $id) { __typename } }",
            id=_sensor_state_id(dagster, SHARE_SENSOR_NAME),
        )
    folder = dagster.landing / PUBLISHED
    assert (folder / "_SUCCESS").is_file() and len(list(folder.glob("*.zip"))) == 37
    rows, _ = row_count_metadata(dagster, "empresas", PUBLISHED)
    assert rows == count_rows(postgres_server, "empresas", PUBLISHED) > 0


def _sensor_state_id(dagster: Dagster, name: str) -> str:
    sensors = dagster.graphql(SENSORS, repo=dagster.repository())["sensorsOrError"]["results"]
    return next(s["sensorState"]["id"] for s in sensors if s["name"] == name)


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="Chromium is not installed (apt-get install chromium)"
)
def test_the_asset_catalog_lists_the_ten_tables(dagster: Dagster, tmp_path: Path) -> None:
    """The catalog is a virtualized list: a tall window makes every row render."""
    links = [f'href="/assets/cnpj/{table}"' for table in TABLES]

    def rendered() -> str | None:
        browser = subprocess.Popen(
            [
                str(shutil.which("chromium")),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-crash-reporter",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--window-size=1400,2400",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{dagster.url}/assets",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            dom, _ = browser.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            dom = ""
        finally:
            stop_group(browser)
        return dom if all(link in dom for link in links) else None

    dom = wait_for("the asset catalog to link the ten tables", rendered, 240, every=5)
    assert 'href="/assets/cnpj/release_files"' in dom
