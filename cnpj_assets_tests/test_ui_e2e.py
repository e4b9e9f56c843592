"""The UI path end to end: `cnpj-assets ui` (dg dev: webserver, daemon, code server) on
the PostgreSQL instance, used through GraphQL (the UI's own API), Dagster's CLI and a
headless Chromium.

A load run by `cnpj-assets load` is a run of the declared `load_release` job that the UI
re-executes, through GraphQL and with the run page's "Re-execute all" button; the docs'
Dagster CLI examples (sensors, a backfill of releases) run against the same instance; the
share sensor, switched on like a user would in the UI, downloads a month from a fake share
on 127.0.0.1 and loads it; the browser sees the location's asset group, an asset's plots
and starts a run. Every process is started in its own session and stopped by its group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnpj_assets.defs.sensors import LANDING_SENSOR_NAME
from cnpj_assets.instance import CODE_LOCATION
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.source.sensor import SHARE_SENSOR_NAME
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.browser import CHROMIUM, Browser
from cnpj_assets_tests.dagster_processes import (
    PROJECT_ROOT,
    RUN_SECONDS,
    Webserver,
    executable,
    free_port,
    row_count_metadata,
    start,
    stop_group,
    wait_for,
)
from cnpj_assets_tests.helpers import count_rows, database_of_its_own
from cnpj_assets_tests.webdav_server import FakeShare

LOADED = "2032-01"  # loaded by `cnpj-assets load`, then re-executed from the UI
PUBLISHED = "2032-02"  # only on the fake share; the share sensor fetches it
BACKFILLED = ("2032-03", "2032-04")  # backfilled with `dagster job backfill`


@dataclass
class DevUi:
    """`cnpj-assets ui` running, its landing folder, log and environment."""

    webserver: Webserver
    landing: Path
    log: Path
    env: dict[str, str]

    def shell(self, command: str) -> str:
        """A command in a user's shell after `eval "$(cnpj-assets env)"`; fails with its output."""
        done = subprocess.run(
            ["bash", "-c", f'eval "$(cnpj-assets env)" && {command}'],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, (
            f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done.stdout


SENSORS = """query($repo: RepositorySelector!) { sensorsOrError(repositorySelector: $repo) {
  ... on Sensors { results { name defaultStatus sensorState { id status } } } } }"""

REEXECUTE = """mutation($parent: String!) { launchPipelineReexecution(
  reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
  __typename ... on LaunchRunSuccess { run { runId jobName } } ... on PythonError { message } } }"""

CHILD_RUNS = """query($parent: String!) { runsOrError(filter: {tags: [{key: "dagster/parent_run_id", value: $parent}]}) {
  ... on Runs { results { runId status jobName } } } }"""


def sensor_states(webserver: Webserver) -> dict[str, dict]:
    data = webserver.graphql(SENSORS, repo=webserver.repository())
    return {s["name"]: s for s in data["sensorsOrError"]["results"]}


@pytest.fixture(scope="module")
def postgres_server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of this module's own: it publishes releases, and which release is
    published is global state that the other modules' drift checks compare with."""
    with database_of_its_own(postgres_server, "cnpj_ui_e2e") as own:
        yield own


@pytest.fixture(scope="module")
def dev_ui(postgres_server: ServerUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevUi]:
    landing = tmp_path_factory.mktemp("e2e_landing")
    origin = tmp_path_factory.mktemp("e2e_share")
    # every month as big as the first: the release job publishes only a release whose
    # tables did not shrink (the drift guard), and a refused release fails its run
    write_release(release=PUBLISHED, rows=500, out_dir=origin, seed=21)
    logs = tmp_path_factory.mktemp("e2e_logs")
    share = FakeShare.from_landing(origin, [PUBLISHED]).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CNPJ_LANDING_DIR": str(landing),
        "CNPJ_RECEITA_URL": share.share_url,
        "CNPJ_RECEITA_LEGACY_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["ui"] = start(
            "ui", [executable("cnpj-assets"), "ui", "--port", str(port)], env, logs
        )
        webserver = Webserver(f"http://127.0.0.1:{port}")
        webserver.wait_until_loaded(processes, logs)
        landing_sensor = sensor_states(webserver)[LANDING_SENSOR_NAME]["sensorState"]["id"]
        webserver.graphql(  # these tests start their loads themselves
            "mutation($id: String) { stopSensor(id: $id) { __typename } }", id=landing_sensor
        )
        yield DevUi(webserver, landing, logs / "ui.log", env)
    finally:
        for process in processes.values():
            stop_group(process)
        share.stop()


@pytest.fixture(scope="module")
def cli_run(dev_ui: DevUi) -> dict[str, str]:
    """The run of `cnpj-assets load` on the release LOADED, as GraphQL shows it.

    Its files are written here, not with the UI: the landing sensor, switched on for a
    moment by another test, would load a release it finds waiting (a second run)."""
    write_release(release=LOADED, rows=500, out_dir=dev_ui.landing, seed=21)
    dev_ui.shell(f"cnpj-assets load --release {LOADED} --landing {dev_ui.landing}")
    (run,) = dev_ui.webserver.runs_of(LOADED, "load_release")
    return run


def test_the_ui_serves_the_location_as_the_project_names_it_and_warns_of_nothing(
    dev_ui: DevUi,
) -> None:
    assert dev_ui.webserver.location == CODE_LOCATION
    printed = dev_ui.log.read_text()
    assert "Serving dagster-webserver" in printed
    assert "superseded" not in printed.lower() and "dg dev" not in printed


def test_the_sensors_show_and_switch_in_the_ui(dev_ui: DevUi) -> None:
    sensors = sensor_states(dev_ui.webserver)
    assert sensors[LANDING_SENSOR_NAME]["defaultStatus"] == "RUNNING"
    assert sensors[LANDING_SENSOR_NAME]["sensorState"]["status"] == "STOPPED"
    assert sensors[SHARE_SENSOR_NAME]["defaultStatus"] == "STOPPED"
    assert sensors[SHARE_SENSOR_NAME]["sensorState"]["status"] == "STOPPED"


def test_a_cli_load_runs_the_declared_job_and_graphql_re_executes_it(
    dev_ui: DevUi, cli_run: dict[str, str], postgres_server: ServerUrl
) -> None:
    webserver = dev_ui.webserver
    assert (cli_run["jobName"], cli_run["status"]) == ("load_release", "SUCCESS")
    launched = webserver.graphql(REEXECUTE, parent=cli_run["runId"])["launchPipelineReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    assert launched["run"]["jobName"] == "load_release"
    run_id = launched["run"]["runId"]
    webserver.wait_for_success(run_id)
    for table in TABLES:
        rows, materialized_by = row_count_metadata(webserver, table, LOADED)
        assert materialized_by == run_id
        assert rows == count_rows(postgres_server, table, LOADED)
    assert row_count_metadata(webserver, "empresas", LOADED)[0] > 0


def test_the_readmes_dagster_cli_examples_switch_sensors_and_backfill_releases(
    dev_ui: DevUi, postgres_server: ServerUrl
) -> None:
    webserver, workspace = dev_ui.webserver, "-w $DAGSTER_HOME/workspace.yaml"
    dev_ui.shell(f"dagster sensor start {LANDING_SENSOR_NAME} {workspace}")
    try:
        assert sensor_states(webserver)[LANDING_SENSOR_NAME]["sensorState"]["status"] == "RUNNING"
    finally:  # the other tests start their loads themselves, whatever runs before them
        dev_ui.shell(f"dagster sensor stop {LANDING_SENSOR_NAME} {workspace}")
    assert sensor_states(webserver)[LANDING_SENSOR_NAME]["sensorState"]["status"] == "STOPPED"
    for release in BACKFILLED:
        write_release(release=release, rows=500, out_dir=dev_ui.landing, seed=21)
    dev_ui.shell(f"cnpj-assets add-partition {' '.join(BACKFILLED)}")
    dev_ui.shell(
        f"dagster job backfill {workspace} -j load_release "
        f"--from {BACKFILLED[0]} --to {BACKFILLED[-1]} --noprompt"
    )
    for release in BACKFILLED:
        (run,) = wait_for(
            f"the backfill's run of {release}",
            lambda r=release: webserver.runs_of(r, "load_release"),
            RUN_SECONDS,
        )
        assert run["jobName"] == "load_release"
        webserver.wait_for_success(run["runId"])
        assert count_rows(postgres_server, "empresas", release) > 0


def test_the_share_sensor_switched_on_downloads_and_loads_a_new_month(
    dev_ui: DevUi, postgres_server: ServerUrl
) -> None:
    webserver = dev_ui.webserver
    selector = {**webserver.repository(), "sensorName": SHARE_SENSOR_NAME}
    started = webserver.graphql(
        """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
             ... on Sensor { sensorState { status } } } }""",
        selector=selector,
    )
    assert started["startSensor"]["sensorState"]["status"] == "RUNNING"
    try:
        (run,) = wait_for(
            f"the share sensor to launch a run for {PUBLISHED}",
            lambda: webserver.runs_of(PUBLISHED, "download_and_load_release"),
            RUN_SECONDS,
        )
        assert run["jobName"] == "download_and_load_release"
        webserver.wait_for_success(run["runId"])
    finally:
        webserver.graphql(
            "mutation($id: String) { stopSensor(id: $id) { __typename } }",
            id=sensor_states(webserver)[SHARE_SENSOR_NAME]["sensorState"]["id"],
        )
    folder = dev_ui.landing / PUBLISHED
    assert (folder / "_SUCCESS").is_file() and len(list(folder.glob("*.zip"))) == 37
    rows, _ = row_count_metadata(webserver, "empresas", PUBLISHED)
    assert rows == count_rows(postgres_server, "empresas", PUBLISHED) > 0


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CNPJ_REQUIRE_BROWSER"),
    reason="Chromium is not installed (apt-get install chromium; .ci/run does, and there "
    "CNPJ_REQUIRE_BROWSER=1 makes these tests fail rather than skip without it)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium, its window tall enough to show every asset of the group (the
    UI draws only what a window shows)."""
    profile = tmp_path / "chromium"
    profile.mkdir()
    opened = Browser(profile, height=3000)
    try:
        yield opened
    finally:
        opened.screenshot(tmp_path / "last_page.png")
        opened.close()
        shutil.rmtree(profile, ignore_errors=True)


@needs_chromium
def test_the_location_url_shows_the_asset_group(dev_ui: DevUi, browser: Browser) -> None:
    browser.open(f"{dev_ui.webserver.url}/locations/{CODE_LOCATION}/asset-groups/cnpj")
    browser.wait_for_text("Asset Group in")
    browser.dismiss("Skip")  # the "Join the Dagster community" dialog, when it shows
    browser.wait_for_text("Asset Group in", "release_files", "cnpj_completo", *TABLES)


@needs_chromium
def test_an_asset_page_plots_its_measures(
    dev_ui: DevUi, cli_run: dict[str, str], browser: Browser
) -> None:
    browser.open(f"{dev_ui.webserver.url}/assets/cnpj/empresas")
    browser.wait_for_text("Metadata", "rows_per_second")
    browser.dismiss("Skip")  # the "Join the Dagster community" dialog, when it shows
    browser.click("Plots")
    page = browser.wait_for_text("When graphing values by partition")
    plots = page.split("Plots", 1)[1].split("When graphing values by partition", 1)[0].split()
    assert {"dagster/row_count", "rows_per_second", "seconds", "rejected_rows"} <= set(plots)
    assert "table_load_id" not in plots
    charts = browser.evaluate("document.querySelectorAll('canvas, svg.recharts-surface').length")
    assert charts >= len(plots), f"{charts} charts drawn for {len(plots)} plots"


@needs_chromium
def test_a_run_started_from_the_run_page_re_executes_the_cli_load(
    dev_ui: DevUi, cli_run: dict[str, str], browser: Browser
) -> None:
    webserver = dev_ui.webserver
    browser.open(f"{webserver.url}/runs/{cli_run['runId']}")
    browser.wait_for_text("Re-execute all (*)", "RUN_SUCCESS")
    browser.dismiss("Skip")
    browser.click("Re-execute all (*)")

    def shown_child() -> dict[str, str] | None:
        """The re-execution the button started: the run page the browser moved to."""
        shown = browser.evaluate("location.pathname")
        children = webserver.graphql(CHILD_RUNS, parent=cli_run["runId"])["runsOrError"]
        return next((r for r in children["results"] if shown == f"/runs/{r['runId']}"), None)

    started_here = wait_for("the page of a run re-executing the CLI's load", shown_child, 120)
    assert started_here["jobName"] == "load_release"
    webserver.wait_for_success(started_here["runId"])
