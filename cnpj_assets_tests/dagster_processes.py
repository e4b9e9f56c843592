"""Running Dagster's long-lived processes in tests, and talking to them through GraphQL.

Every process starts in its own session (process group) with its output in a log file,
and is stopped by that group: the webserver and `dg dev` leave children (code servers)
that must not outlive the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REPO = "__repository__"
STARTUP_SECONDS = 180
RUN_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    def runs_of(self, partition: str) -> list[dict[str, str]]:
        runs_filter = {"tags": [{"key": "dagster/partition", "value": partition}]}
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
