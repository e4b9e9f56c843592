"""Dagster's default run launcher, able to tell the daemon's run monitoring a run is dead.

The default launcher cannot check a run's worker, so run monitoring leaves a run whose
process died STARTED, and its pool slots held, forever. This one answers from the
worker tag the executor writes (runs/worker.py): FAILED when the process is gone from
this host, RUNNING otherwise, including when it cannot tell (no tag, another host):
monitoring fails every run that is not RUNNING.
"""

from __future__ import annotations

from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

from cnpj_assets.runs.worker import Liveness, RunWorker


class WatchedRunLauncher(DefaultRunLauncher):
    """Launches like DefaultRunLauncher; checks workers through their tag."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = RunWorker.from_tags(dict(run.tags))
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker tag: cannot tell")
        liveness = worker.liveness()
        if liveness is Liveness.GONE:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"its {worker} is gone")
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"its {worker} is {liveness.value}")
