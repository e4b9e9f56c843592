"""A Dagster executor that runs a job's independent steps at once, in threads of one process.

A release job is ten table loads, their checks and cnpj_completo. In-process execution
runs them one after another, and no single table load keeps both cores busy (75-83%
of a 1 M-company release's tables, measured from /proc/stat). The multiprocess
executor overlaps them, but each step then starts a process that loads the code
location and connects to the instance: measured on the same release, the six lookups
(a few thousand rows each) took 5-6 s instead of 0.6 s, and the whole job 44-54 s
instead of 14. Here every step runs in a thread of the run's process: the heavy work
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

DEFAULT_MAX_CONCURRENT = 3  # two table loads (the pool's default) and a light step beside them
WAIT_REPORT_SECONDS = 5.0
_STEP_DONE = object()


class _StepCrash:
    """An error that escaped a step's own handling, carried to the orchestrating thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _SlotAwareConcurrency(InstanceConcurrencyContext):
    """Re-checks blocked claims as soon as a step of this run frees a slot."""

    def free_step(self, step_key: str) -> None:
        super().free_step(step_key)
        for pending in self._pending_timeouts:
            self._pending_timeouts[pending] = 0.0

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


def _threaded_iterator(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """The in-process executor's loop, with up to `max_concurrent` steps in flight."""
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    events: queue.Queue = queue.Queue()
    running: dict[str, tuple[Any, list[DagsterEvent]]] = {}
    last_wait_report = 0.0
    with ExitStack() as stack:
        concurrency = stack.enter_context(
            _SlotAwareConcurrency(job_context.instance, job_context.dagster_run)
        )
        active = stack.enter_context(
            ActiveExecution(
                execution_plan,
                retry_mode=job_context.retry_mode,
                max_concurrent=max_concurrent,
                instance_concurrency_context=concurrency,
                step_dependency_config=job_context.step_dependency_config,
            )
        )
        log_key = compute_log_manager.build_log_key_for_run(
            job_context.run_id, create_compute_log_file_key()
        )
        log_context = stack.enter_context(compute_log_manager.capture_logs(log_key))
        yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
        threads = stack.enter_context(
            ThreadPoolExecutor(max_concurrent, thread_name_prefix="dagster-step")
        )
        while not active.is_complete or running:
            if not active.is_complete:
                for step in active.get_steps_to_execute(limit=max_concurrent - len(running)):
                    step_context = job_context.for_step(step, active.get_known_state())
                    running[step.key] = (step_context, [])
                    threads.submit(_run_step, step_context, events)
                yield from active.concurrency_event_iterator(job_context)
            if not running:
                wait = concurrency.seconds_to_next_claim_check()
                if wait is None:
                    continue
                if time.monotonic() - last_wait_report >= WAIT_REPORT_SECONDS:
                    last_wait_report = time.monotonic()
                    yield DagsterEvent.engine_event(
                        job_context,
                        "waiting for a concurrency slot: "
                        + ", ".join(sorted(concurrency.pending_claim_steps()))
                        + " (the pool's slots are held by other runs; see Deployment -> "
                        "Concurrency)",
                        EngineEventData(),
                    )
                time.sleep(min(wait, WAIT_REPORT_SECONDS))
                continue
            timeout = concurrency.seconds_to_next_claim_check()
            try:
                key, item = events.get(timeout=timeout)
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
