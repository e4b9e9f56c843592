"""At a CLI load's start: runs that died are marked failed and their pool slots freed.

A run whose process died (kill -9, a server outage that crashed its storage) stays
STARTED and keeps its `cnpj_postgres` slots; after two such deaths every later load
waited forever. Dagster's run monitoring catches these where a daemon runs
(runs/launcher.py); a CLI load has no daemon, so it looks first, itself: a run whose
worker is gone from this host is marked FAILED, and a run that is over (or gone from
the run storage) gives back whatever slots it still holds. Each is said in one line.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from cnpj_assets.runs.pool_slots import holders
from cnpj_assets.runs.worker import Liveness, RunWorker

IN_PROGRESS = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _slots_by_run(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Every run in a pool's tables, with the pools it holds a slot of (one entry per slot).

    A step still queued holds nothing yet, but a freed slot would be assigned to it: a
    dead run's queued steps must go too.
    """
    storage = instance.event_log_storage
    held: dict[str, list[str]] = {}
    for key, info in storage.get_concurrency_infos(list(storage.get_concurrency_keys())).items():
        for pending in info.pending_steps:
            held.setdefault(pending.run_id, [])
        for run_id, steps in holders(info).items():
            held.setdefault(run_id, []).extend([key] * len(steps))
    return held


def _slots_text(pools: list[str]) -> str:
    if not pools:
        return "it held no pool slot"
    counts = {pool: pools.count(pool) for pool in pools}
    return "freed " + ", ".join(f"{n} slot(s) of {pool}" for pool, n in sorted(counts.items()))


def heal_dead_runs(instance: dg.DagsterInstance, say: Callable[[str], None] = print) -> int:
    """Fail the dead runs of this host, free the slots of runs that are over; return how many."""
    storage = instance.event_log_storage
    healed = 0
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        worker = RunWorker.from_tags(dict(run.tags))
        if worker is None or worker.liveness() is not Liveness.GONE:
            continue
        pools = _slots_by_run(instance).get(run.run_id, [])
        instance.report_run_failed(
            run, f"its {worker} is gone: the run died without finishing; found by a later load"
        )
        storage.free_concurrency_slots_for_run(run.run_id)
        say(
            f"run {run.run_id} ({run.job_name}) died with its {worker}: marked FAILED, "
            f"{_slots_text(pools)}"
        )
        healed += 1
    for run_id, pools in _slots_by_run(instance).items():
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            continue
        storage.free_concurrency_slots_for_run(run_id)
        state = f"is {run.status.value}" if run is not None else "no longer exists"
        say(f"run {run_id} {state} but held pool slots: {_slots_text(pools)}")
        healed += 1
    return healed
