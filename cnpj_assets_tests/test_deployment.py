"""The production deployment of deploy/, as separate processes: a code server for
`cnpj_assets.definitions`, the webserver and the daemon, on deploy/dagster.yaml (an
instance in PostgreSQL, queued runs, pool limits, run monitoring, tick retention), with
the purge of old run log lines scheduled (CNPJ_RUN_LOG_RETENTION_DAYS).

A complete release dropped into the landing folder must be found by the daemon's landing
sensor, loaded by the run it launches through the code server, and seen through the
webserver's GraphQL API; the tables must hold the release.

Note for after issue 14 lands: "the release published" means the release's
`cnpj_current` publication; extend the last test to assert it (through GraphQL: the
publication asset materialized by that run, and cnpj_current pointing at the release).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnpj_assets.dagster_storage import DagsterStorage
from cnpj_assets.instance import CODE_LOCATION
from cnpj_assets.postgres.server import ServerUrl, ensure_database
from cnpj_assets.snapshot import SUCCESS_MARKER
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests import dagster_processes
from cnpj_assets_tests.helpers import count_rows, database_of_its_own

DEPLOY = dagster_processes.PROJECT_ROOT / "deploy"
RELEASE = "2034-01"
INSTANCE_DATABASE = "dagster_deploy"
SCHEDULES = """query($repo: RepositorySelector!) { schedulesOrError(repositorySelector: $repo) {
  ... on Schedules { results { name scheduleState { status } } } } }"""


@dataclass
class Deployment:
    """The webserver of the three processes, the landing folder they watch, their logs."""

    webserver: dagster_processes.Webserver
    landing: Path
    logs: Path


@pytest.fixture(scope="module")
def postgres_server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of this module's own: it publishes releases, and which release is
    published is global state that the other modules' drift checks compare with."""
    with database_of_its_own(postgres_server, "cnpj_deployment") as own:
        yield own


@pytest.fixture(scope="module")
def deployment(
    postgres_server: ServerUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("deploy_home")
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    landing = tmp_path_factory.mktemp("deploy_landing")
    logs = tmp_path_factory.mktemp("deploy_logs")
    ensure_database(postgres_server, INSTANCE_DATABASE)
    grpc_port, web_port = dagster_processes.free_port(), dagster_processes.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": DagsterStorage(
            postgres_server.database(INSTANCE_DATABASE)
        ).sqlalchemy_url(),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(grpc_port),
        "CNPJ_LANDING_DIR": str(landing),
        "CNPJ_RUN_LOG_RETENTION_DAYS": "90",
        "PYTHONUNBUFFERED": "1",
    }
    workspace = ["-w", str(DEPLOY / "workspace.yaml")]
    commands = {
        "code-server": [
            dagster_processes.executable("dagster"),
            *("code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port)),
            *("-m", "cnpj_assets.definitions", "--location-name", CODE_LOCATION),
        ],
        "webserver": [
            dagster_processes.executable("dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(web_port), *workspace),
        ],
        "daemon": [dagster_processes.executable("dagster-daemon"), "run", *workspace],
    }
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            processes[name] = dagster_processes.start(name, command, env, logs)
        webserver = dagster_processes.Webserver(f"http://127.0.0.1:{web_port}")
        webserver.wait_until_loaded(processes, logs)
        yield Deployment(webserver, landing, logs)
    finally:
        for process in reversed(processes.values()):
            dagster_processes.stop_group(process)


def test_the_three_processes_serve_one_location_with_its_daemons_and_retention(
    deployment: Deployment,
) -> None:
    assert deployment.webserver.location == CODE_LOCATION
    daemons = (deployment.logs / "daemon.log").read_text()
    for daemon in ("SensorDaemon", "QueuedRunCoordinatorDaemon", "MonitoringDaemon"):
        assert daemon in daemons
    webserver = deployment.webserver
    schedules = webserver.graphql(SCHEDULES, repo=webserver.repository())["schedulesOrError"]
    states = {s["name"]: s["scheduleState"]["status"] for s in schedules["results"]}
    assert states == {"purge_run_log_lines_daily": "RUNNING"}


def drop_release(landing: Path, release: str) -> None:
    """A complete release appears at once, as a copy that ends with `_SUCCESS` does."""
    staging = landing.parent / f"{landing.name}_staging"
    write_release(release=release, rows=400, out_dir=staging, seed=51)
    (staging / release / "quirks.json").unlink(missing_ok=True)
    (staging / release).rename(landing / release)
    (landing / release / SUCCESS_MARKER).write_text("")


def test_a_release_dropped_into_the_landing_folder_is_loaded_by_the_daemons_sensor(
    deployment: Deployment, postgres_server: ServerUrl
) -> None:
    drop_release(deployment.landing, RELEASE)
    webserver = deployment.webserver
    (run,) = dagster_processes.wait_for(
        f"the landing sensor to launch a run for {RELEASE}",
        lambda: webserver.runs_of(RELEASE, "load_release"),
        dagster_processes.RUN_SECONDS,
    )
    assert run["jobName"] == "load_release"
    webserver.wait_for_success(run["runId"])
    for table in TABLES:
        assert count_rows(postgres_server, table, RELEASE) > 0, table
