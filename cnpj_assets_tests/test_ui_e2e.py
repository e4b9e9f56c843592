"""The UI path end to end: dagster-webserver and dagster-daemon on the PostgreSQL instance.

A load launched through the GraphQL API (the UI's own API) runs on the daemon and its
materialization metadata reads back; the share sensor, switched on through the API like a
user would in the UI, downloads a month from a fake share on 127.0.0.1 and loads it. Where
Chromium is installed, the asset catalog is rendered headless and must list the tables.
Every process is started in its own session and stopped by its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnpj_assets.instance import prepare_instance_home
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.sensors import LANDING_SENSOR_NAME
from cnpj_assets.source.sensor import SHARE_SENSOR_NAME
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import count_rows
from cnpj_assets_tests.webdav_server import FakeShare

LOADED = "2032-01"  # in the landing folder from the start; launched through GraphQL
PUBLISHED = "2032-02"  # only on the fake share; the share sensor fetches it
REPO = "__repository__"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 180
RUN_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], seconds: float, every: float = 2.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, KeyError, TypeError) as error:
            last_error = error
        time.sleep(every)
    raise AssertionError(
        f"timed out after {seconds} s waiting for {what} (last error: {last_error})"
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session, and everything it started.

    The leader may exit on SIGTERM before its children (dagster's code servers wait for a
    heartbeat), so what is left of the group gets a few seconds, then SIGKILL.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class Dagster:
    """The running webserver and daemon, and how to talk to them."""

    url: str
    location: str
    landing: Path
    logs: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def repository(self) -> dict[str, str]:
        return {"repositoryName": REPO, "repositoryLocationName": self.location}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


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
    port = free_port()
    processes: dict[str, subprocess.Popen] = {}
    share = FakeShare.from_landing(origin, [PUBLISHED]).start()
    with pytest.MonkeyPatch.context() as restore:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")  # prepare_instance_home sets them; undone at the end
        prepare_instance_home(postgres_server)
        env = {
            **os.environ,
            "CNPJ_LANDING_DIR": str(landing),
            "CNPJ_RECEITA_URL": share.share_url,
            "CNPJ_RECEITA_LEGACY_URL": "",
            "PYTHONUNBUFFERED": "1",
        }
        workspace = ["-m", "cnpj_assets.definitions"]
        commands = {
            "webserver": [
                _bin("dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                *workspace,
            ],
            "daemon": [_bin("dagster-daemon"), "run", *workspace],
        }
        try:
            for name, command in commands.items():
                with (logs / f"{name}.log").open("wb") as log:
                    processes[name] = subprocess.Popen(
                        command,
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
            server = Dagster(f"http://127.0.0.1:{port}", "", landing, logs)
            locations = wait_for(
                "the webserver to load the code location",
                lambda: _alive(processes, logs) and _loaded_locations(server),
                STARTUP_SECONDS,
            )
            server.location = locations[0]
            yield server
        finally:
            for process in reversed(processes.values()):
                stop_group(process)
            share.stop()


def _alive(processes: dict[str, subprocess.Popen], logs: Path) -> bool:
    """Fail at once, with the log, if the webserver or the daemon died while starting."""
    for name, process in processes.items():
        if process.poll() is not None:
            log = (logs / f"{name}.log").read_text()[-3000:]
            raise AssertionError(f"the {name} exited {process.returncode}:\n{log}")
    return True


def _loaded_locations(server: Dagster) -> list[str]:
    data = server.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries {
              name locationOrLoadError { __typename } } } } }"""
    )
    entries = data["workspaceOrError"]["locationEntries"]
    return [
        e["name"] for e in entries if e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    ]


SENSORS = """query($repo: RepositorySelector!) { sensorsOrError(repositorySelector: $repo) {
  ... on Sensors { results { name defaultStatus sensorState { id status } } } } }"""

RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""

RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName } } } }"""

MATERIALIZATION = """query($key: AssetKeyInput!, $partition: String!) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) {
    runId partition metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""


def run_status(dagster: Dagster, run_id: str) -> str:
    return dagster.graphql(RUN, id=run_id)["runOrError"]["status"]


def wait_for_success(dagster: Dagster, run_id: str) -> None:
    finished = wait_for(
        f"run {run_id} to finish",
        lambda: (s := run_status(dagster, run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        RUN_SECONDS,
    )
    assert finished == "SUCCESS", f"run {run_id} ended {finished}: {run_errors(dagster, run_id)}"


def run_errors(dagster: Dagster, run_id: str) -> list[str]:
    """The error messages of a failed run, so a failure says why without opening the UI."""
    data = dagster.graphql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection(limit: 5000) {
             events { __typename ... on ErrorEvent { error { message } }
                      ... on MessageEvent { message level } } } } } }""",
        id=run_id,
    )
    events = data["runOrError"]["eventConnection"]["events"]
    return [
        (e.get("error") or {}).get("message") or e.get("message", "")
        for e in events
        if e.get("error") or e.get("level") == "ERROR"
    ]


def row_count_metadata(dagster: Dagster, table: str, partition: str) -> tuple[int, str]:
    data = dagster.graphql(MATERIALIZATION, key={"path": ["cnpj", table]}, partition=partition)
    (event,) = data["assetOrError"]["assetMaterializations"]
    entries = {e["label"]: e.get("intValue") for e in event["metadataEntries"]}
    return entries["dagster/row_count"], event["runId"]


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
    added = dagster.graphql(
        """mutation($repo: RepositorySelector!, $key: String!) {
             addDynamicPartition(repositorySelector: $repo, partitionsDefName: "cnpj_release", partitionKey: $key) {
               __typename } }""",
        repo=dagster.repository(),
        key=LOADED,
    )
    assert added["addDynamicPartition"]["__typename"] in (
        "AddDynamicPartitionSuccess",
        "DuplicateDynamicPartitionError",
    )
    launched = dagster.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        params={
            "selector": {**dagster.repository(), "jobName": "load_release"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": LOADED}]},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
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
