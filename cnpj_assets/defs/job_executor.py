"""Which executor the release jobs run with: threads of one process, or a pod per step.

On one machine, the threaded executor (executor.py): every step in a thread of the run's
process. On Kubernetes (CNPJ_EXECUTOR=k8s, with the optional extra `cnpj_assets[k8s]`),
dagster-k8s's k8s_job_executor: each table's step in a pod of its own, sized by its
`dagster-k8s/config` tag, while the `cnpj_postgres` pool still bounds the loads that hit
PostgreSQL at once across every pod.
"""

from __future__ import annotations

import os

import dagster as dg

from cnpj_assets.defs.executor import threaded_executor

EXECUTOR_VARIABLE = "CNPJ_EXECUTOR"
CHOICES = ("threads", "k8s")


def release_executor() -> dg.ExecutorDefinition:
    """The executor CNPJ_EXECUTOR names (default `threads`)."""
    choice = os.environ.get(EXECUTOR_VARIABLE) or "threads"
    if choice not in CHOICES:
        raise ValueError(f"{EXECUTOR_VARIABLE}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "threads":
        return threaded_executor
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as error:
        raise ImportError(
            f"{EXECUTOR_VARIABLE}=k8s needs dagster-k8s: pip install 'cnpj_assets[k8s]'"
        ) from error
    return k8s_job_executor


def pod_size(cpu: str, memory: str) -> dict[str, dict]:
    """The `dagster-k8s/config` op tag of a step's pod: what it requests, its memory cap.
    Other executors ignore it."""
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
    return {"dagster-k8s/config": {"container_config": {"resources": resources}}}
