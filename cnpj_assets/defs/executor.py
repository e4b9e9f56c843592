"""A Dagster executor that runs a job's independent steps at once, in threads of one process.

A release job is ten table loads, their checks and cnpj_completo. In-process execution
runs them one after another, and no single table load keeps both cores busy. The
multiprocess executor overlaps them, but each step then starts a process that loads
the code location and connects to the instance, which costs more than a small step
itself. Here every step runs in a thread of the run's process: the heavy work
of a load already runs outside the GIL (DuckDB, Arrow, libpq, ISA-L), the resources
are built once, and a step starts in milliseconds.

The steps still take the instance's concurrency pools (a table load claims a slot of
`cnpj_postgres`), so two runs together never exceed the pool's limit. Dagster's own
loop re-checks a blocked claim on a timer (1 s and growing) and, in this pinned
version, spins a core while it waits (its interval is never above zero); this one
sleeps until a step ends or the next claim check is due, re-checks at once when one
of its own steps frees a slot, and says what it waits for at INFO every few seconds.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor

from cnpj_assets.runs.lost_server import lost_server, reason_of
from cnpj_assets.runs.pool_slots import holders
from cnpj_assets.runs.stopping import StopRequest, forget, stop_request
from cnpj_assets.runs.worker import RunWorker

DEFAULT_MAX_CONCURRENT = 3  # two table loads (the pool's default) and a light step beside them
WAIT_REPORT_SECONDS = 5.0
POLL_SECONDS = 0.5  # how often an interrupt is looked for while steps run or wait
_STEP_DONE = object()


class _StepCrash:
    """An error that escaped a step's own handling, carried to the orchestrating thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _SlotAwareConcurrency(InstanceConcurrencyContext):
    """Re-checks blocked claims as soon as a step of this run frees a slot."""

    def __init__(self, instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> None:
        super().__init__(instance, dagster_run)
        self._free_all = False

    def free_step(self, step_key: str) -> None:
        super().free_step(step_key)
        for pending in self._pending_timeouts:
            self._pending_timeouts[pending] = 0.0

    def free_all_on_exit(self) -> None:
        """Give back every slot of the run on leaving: the run is crashing.

        Dagster frees only the claims still pending; slots its steps hold stay taken
        for a run that will never free them. With the storage itself gone, the next
        load (runs/healing.py) or the daemon frees them.
        """
        self._free_all = True

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self._free_all:
            self._instance.event_log_storage.free_concurrency_slots_for_run(self._run_id)

    def seconds_to_next_claim_check(self) -> float | None:
        """When a blocked step should ask again; None when no step is blocked."""
        if not self._pending_claims:
            return None
        now = time.time()
        return max(0.0, min(self._pending_timeouts.get(k, now) - now for k in self._pending_claims))


def _run_step(step_context: Any, events: queue.Queue) -> None:
    """Run one step in this thread, handing its events to the orchestrating thread."""
    try:
        for event in dagster_event_sequence_for_step(step_context):
            events.put((step_context.step.key, event))
    except BaseException as error:  # handed over: the orchestrating thread re-raises it
        events.put((step_context.step.key, _StepCrash(error)))
    finally:
        events.put((step_context.step.key, _STEP_DONE))


def _waiting_for(job_context: PlanExecutionContext, steps: list[str]) -> str:
    """What the blocked steps wait for: their pools, and which runs hold the slots."""
    pools = sorted({job_context.execution_plan.get_step_by_key(k).pool or "?" for k in steps})
    described = []
    for pool, info in job_context.instance.event_log_storage.get_concurrency_infos(pools).items():
        held = holders(info)
        described.append(
            f"{pool}: {sum(len(s) for s in held.values())} of {info.limit} slots held by "
            f"run(s) {', '.join(sorted(run_id[:8] for run_id in held)) or '-'}"
        )
    return (
        f"{', '.join(sorted(steps))} waiting for a pool slot ({'; '.join(described)}); the "
        "slots of a run that died are freed by the next `cnpj-assets load` or the daemon"
    )


def _begin_stopping(
    job_context: PlanExecutionContext, stop: StopRequest, running: list[str]
) -> None:
    """Ask the running loads to stop, and mark the run CANCELING so it ends CANCELED.

    The UI's Terminate marks the run itself; a signal (Ctrl-C, a service manager's
    SIGTERM) does not, and Dagster then calls the interruption unexpected: FAILURE.
    """
    stop.set("the run was interrupted: Ctrl-C, SIGTERM or Terminate")
    instance = job_context.instance
    run = instance.get_run_by_id(job_context.run_id)
    if run is not None and run.status == dg.DagsterRunStatus.STARTED:
        instance.report_run_canceling(run, message="Stopping: interrupted (Ctrl-C or SIGTERM)")
    ending = f"; {', '.join(running)} end at their next batch" if running else ""
    job_context.log.info(f"Stopping: no new step starts{ending}")


def _threaded_iterator(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """The in-process executor's loop, with up to `max_concurrent` steps in flight.

    An interrupt (Ctrl-C, SIGTERM, the UI's Terminate) or a crash of this loop (a lost
    run storage) sets the run's StopRequest, so running loads end at their next batch
    and the thread pool's shutdown waits seconds, not the rest of the load.
    """
    run_id = job_context.run_id
    instance = job_context.instance
    instance.add_run_tags(run_id, RunWorker.current().tag())
    stop = stop_request(run_id)
    compute_log_manager = instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    events: queue.Queue = queue.Queue()
    running: dict[str, tuple[Any, list[DagsterEvent]]] = {}
    last_wait_report = 0.0
    stopping = False
    with ExitStack() as stack:
        stack.callback(forget, run_id)
        concurrency = stack.enter_context(_SlotAwareConcurrency(instance, job_context.dagster_run))
        active = stack.enter_context(
            ActiveExecution(
                execution_plan,
                retry_mode=job_context.retry_mode,
                max_concurrent=max_concurrent,
                instance_concurrency_context=concurrency,
                step_dependency_config=job_context.step_dependency_config,
            )
        )
        log_key = compute_log_manager.build_log_key_for_run(run_id, create_compute_log_file_key())
        log_context = stack.enter_context(compute_log_manager.capture_logs(log_key))
        yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
        threads = stack.enter_context(
            ThreadPoolExecutor(max_concurrent, thread_name_prefix="dagster-step")
        )
        try:
            while (not stopping and not active.is_complete) or running:
                if not stopping and active.check_for_interrupts():
                    stopping = True
                    active.mark_interrupted()
                    _begin_stopping(job_context, stop, sorted(running))
                if not stopping and not active.is_complete:
                    for step in active.get_steps_to_execute(limit=max_concurrent - len(running)):
                        step_context = job_context.for_step(step, active.get_known_state())
                        running[step.key] = (step_context, [])
                        threads.submit(_run_step, step_context, events)
                    yield from active.concurrency_event_iterator(job_context)
                if not running:
                    wait = concurrency.seconds_to_next_claim_check()
                    if wait is None or stopping:
                        continue
                    if time.monotonic() - last_wait_report >= WAIT_REPORT_SECONDS:
                        last_wait_report = time.monotonic()
                        job_context.log.info(
                            _waiting_for(job_context, concurrency.pending_claim_steps())
                        )
                    time.sleep(min(wait, POLL_SECONDS))
                    continue
                due = concurrency.seconds_to_next_claim_check()
                try:
                    key, item = events.get(
                        timeout=POLL_SECONDS if due is None else min(due, POLL_SECONDS)
                    )
                except queue.Empty:
                    continue
                step_context, step_events = running[key]
                if item is _STEP_DONE:
                    del running[key]
                    active.verify_complete(job_context, key)
                    for event in active.plan_events_iterator(job_context):
                        step_events.append(event)
                        yield event
                    yield from _trigger_hook(step_context, step_events)
                elif isinstance(item, _StepCrash):
                    raise item.error
                else:
                    step_events.append(item)
                    yield item
                    active.handle_event(item)
        except BaseException as error:
            stop.set(f"the run failed: {reason_of(error)}")
            if not lost_server(error):  # with the storage gone, freeing would fail too
                concurrency.free_all_on_exit()
            raise


class ThreadedExecutor(Executor):
    """Runs steps in threads of the run's process; see the module docstring."""

    def __init__(self, retries: RetryMode, max_concurrent: int) -> None:
        self._retries = retries
        self.max_concurrent = max_concurrent

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        step_keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing up to {self.max_concurrent} steps at once in threads of process "
            f"{os.getpid()}",
            event_specific_data=EngineEventData.in_process(os.getpid(), step_keys),
        )
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=lambda job_context, execution_plan: _threaded_iterator(
                job_context, execution_plan, self.max_concurrent
            ),
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        )


@dg.executor(
    name="threaded",
    config_schema={
        "max_concurrent": dg.Field(
            int,
            default_value=DEFAULT_MAX_CONCURRENT,
            description="Steps running at once (table loads are also bounded by their pool).",
        ),
        "retries": get_retries_config(),
    },
)
def threaded_executor(init_context: dg.InitExecutorContext) -> ThreadedExecutor:
    """Independent steps at once, in threads of the run's process."""
    config = init_context.executor_config
    return ThreadedExecutor(
        RetryMode.from_config(config["retries"]) or RetryMode.ENABLED,
        int(config["max_concurrent"]),
    )
