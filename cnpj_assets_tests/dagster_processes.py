"""Running Dagster's long-lived processes in tests, and talking to them through GraphQL.

The UI's own API launches runs the way a user does in the UI; the daemon dequeues them
(QueuedRunCoordinator) and the run launcher starts each in a process of its own. Every
process starts in its own session (process group) with its output in a log file, and is
stopped by that group: the webserver and `dg dev` leave children (code servers) that
must not outlive the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest

from cnpj_assets.instance import prepare_instance_home
from cnpj_assets.postgres.server import ServerUrl

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REPO = "__repository__"
STARTUP_SECONDS = 180
RUN_SECONDS = 300


PORT_CLAIMS = Path(tempfile.gettempdir()) / "cnpj_assets_test_ports"
_claimed: list[TextIO] = []  # held open, so locked, until this process ends


def free_port() -> int:
    """A port for a server a test starts, that nothing else will take before it binds.

    Below the kernel's ephemeral range, so no outgoing connection is given it meanwhile,
    and claimed with an exclusive lock on a file, so a test run beside this one never
    picks it: the kernel drops the lock when this process ends, however it ends.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    PORT_CLAIMS.mkdir(exist_ok=True)
    for port in random.sample(range(10_000, low), 200):
        claim = open(PORT_CLAIMS / f"{port}.lock", "w")  # noqa: SIM115 (kept open: the lock)
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            claim.close()
            continue
        _claimed.append(claim)
        return port
    raise RuntimeError(f"no free port found below {low}")


def executable(name: str) -> str:
    """A console script of this virtualenv (dagster, dg, cnpj-assets, ...)."""
    return str(Path(sys.executable).with_name(name))


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


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    """Start a process in a session of its own, its output in `logs/<name>.log`."""
    with (logs / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
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


def alive(processes: dict[str, subprocess.Popen], logs: Path) -> bool:
    """Fail at once, with its log, if one of the processes died."""
    for name, process in processes.items():
        if process.poll() is not None:
            log = (logs / f"{name}.log").read_text()[-3000:]
            raise AssertionError(f"the {name} exited {process.returncode}:\n{log}")
    return True


RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status jobName } } }"""

RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName } } } }"""

MATERIALIZATION = """query($key: AssetKeyInput!, $partition: String!) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) {
    runId partition metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""


@dataclass
class Webserver:
    """A running dagster-webserver and how to talk to it."""

    url: str
    location: str = ""

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

    def loaded_locations(self) -> list[str]:
        data = self.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries {
                  name locationOrLoadError { __typename } } } } }"""
        )
        entries = data["workspaceOrError"]["locationEntries"]
        return [
            e["name"]
            for e in entries
            if e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        ]

    def wait_until_loaded(self, processes: dict[str, subprocess.Popen], logs: Path) -> None:
        (self.location,) = wait_for(
            "the webserver to load the code location",
            lambda: alive(processes, logs) and self.loaded_locations(),
            STARTUP_SECONDS,
        )

    def runs_of(self, partition: str, job: str) -> list[dict[str, str]]:
        """The job's runs of a release (a publication also starts the runs of the jobs
        that follow it: after_publication, export_parquet)."""
        runs_filter = {
            "pipelineName": job,
            "tags": [{"key": "dagster/partition", "value": partition}],
        }
        return self.graphql(RUNS, filter=runs_filter)["runsOrError"]["results"]

    def run(self, run_id: str) -> dict[str, str]:
        return self.graphql(RUN, id=run_id)["runOrError"]

    def wait_for_success(self, run_id: str) -> None:
        finished = wait_for(
            f"run {run_id} to finish",
            lambda: (s := self.run(run_id)["status"]) in ("SUCCESS", "FAILURE", "CANCELED") and s,
            RUN_SECONDS,
        )
        assert finished == "SUCCESS", f"run {run_id} ended {finished}: {self.run_errors(run_id)}"

    def run_errors(self, run_id: str) -> list[str]:
        """The error messages of a failed run, so a failure says why without opening the UI."""
        data = self.graphql(
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


def row_count_metadata(webserver: Webserver, table: str, partition: str) -> tuple[int, str]:
    """The row count a table's last materialization of `partition` reported, and its run."""
    data = webserver.graphql(MATERIALIZATION, key={"path": ["cnpj", table]}, partition=partition)
    (event,) = data["assetOrError"]["assetMaterializations"]
    entries = {e["label"]: e.get("intValue") for e in event["metadataEntries"]}
    return entries["dagster/row_count"], event["runId"]


def launch_load(webserver: Webserver, release: str) -> str:
    """Add the release's partition and launch `load_release` on it, as the UI does; its run id."""
    added = webserver.graphql(
        """mutation($repo: RepositorySelector!, $key: String!) {
             addDynamicPartition(repositorySelector: $repo, partitionsDefName: "cnpj_release", partitionKey: $key) {
               __typename } }""",
        repo=webserver.repository(),
        key=release,
    )
    assert added["addDynamicPartition"]["__typename"] in (
        "AddDynamicPartitionSuccess",
        "DuplicateDynamicPartitionError",
    )
    launched = webserver.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        params={
            "selector": {**webserver.repository(), "jobName": "load_release"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": release}]},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


@contextlib.contextmanager
def running_dagster(
    server: ServerUrl, landing: Path, logs: Path, env: dict[str, str] | None = None
) -> Iterator[Webserver]:
    """The webserver and the daemon on the instance of `server`, plus `env`."""
    port = free_port()
    processes: dict[str, subprocess.Popen] = {}
    with pytest.MonkeyPatch.context() as restore:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")  # prepare_instance_home sets them; undone at the end
        prepare_instance_home(server)
        environment = {
            **os.environ,
            "CNPJ_LANDING_DIR": str(landing),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        workspace = ["-m", "cnpj_assets.definitions"]
        commands = {
            "webserver": [
                executable("dagster-webserver"),
                *("-h", "127.0.0.1", "-p", str(port)),
                *workspace,
            ],
            "daemon": [executable("dagster-daemon"), "run", *workspace],
        }
        try:
            for name, command in commands.items():
                processes[name] = start(name, command, environment, logs)
            webserver = Webserver(f"http://127.0.0.1:{port}")
            webserver.wait_until_loaded(processes, logs)
            yield webserver
        finally:
            for process in reversed(processes.values()):
                stop_group(process)
