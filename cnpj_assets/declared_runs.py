"""Runs of the code location's declared jobs, made by the CLI the way the webserver makes them.

`dg.execute_job` creates a run with no code location origin, and the UI cannot
re-execute such a run ("Re-execute all" fails with "Expected non-None value"): the
webserver finds the job of a re-execution by the run's location and repository names.
So the CLI creates the run with the origin of the location `cnpj_assets`, as `cnpj-assets
ui` and deploy/ name it, then executes it in its own process with the job's executor.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from cnpj_assets.instance import CODE_LOCATION

DEFINITIONS_MODULE = "cnpj_assets.definitions"


def location_origin(job_name: str) -> RemoteJobOrigin:
    """Where the webserver finds `job_name`: the location cnpj_assets, its one repository."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE),
        location_name=CODE_LOCATION,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


def execute_declared_job(
    job: Callable[[], dg.JobDefinition],
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> dg.ExecutionResult:
    """Create the run of a declared job with its location's origin and execute it here."""
    reconstructable = dg.reconstructable(job)
    job_def = reconstructable.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags=tags,
        remote_job_origin=location_origin(job_def.name),
        job_code_origin=reconstructable.get_python_origin(),
    )
    return execute_run(reconstructable, run, instance)
