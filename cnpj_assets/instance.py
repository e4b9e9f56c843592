"""The Dagster instance: runs and events in PostgreSQL, where CNPJ_DAGSTER_STORAGE says.

The project writes `$CNPJ_HOME/dagster/dagster.yaml` and points DAGSTER_HOME at it, so
the CLI's loads and the UI share one instance; `cnpj-assets env` exports the same
variables for Dagster's own CLI. Beside it, `workspace.yaml` names the code location
`cnpj_assets`, as pyproject.toml and deploy/ do. The storage URL is read from the
environment variable DAGSTER_PG_URL by Dagster itself, so it is never written to disk
(see dagster_storage.py for where the runs live); with the pinned versions it must use
the `postgresql+psycopg2://` driver. The table assets share the concurrency pool
`cnpj_postgres`, whose limit (default 2, the number of loads that hit PostgreSQL at once
across all runs) comes from CNPJ_LOAD_POOL_LIMIT.

Run monitoring is on, with a launcher that can tell a dead run worker (runs/launcher.py):
where the daemon runs, a run whose process died is marked failed and, 30 s after a
run ends, any pool slot it still holds is freed.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from cnpj_assets.dagster_storage import dagster_storage
from cnpj_assets.defs.assets import LOAD_POOL
from cnpj_assets.landing import default_landing_dir
from cnpj_assets.postgres.server import ServerUrl, cnpj_home

DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
run_launcher:
  module: cnpj_assets.runs.launcher
  class: WatchedRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: 30
concurrency:
  pools:
    default_limit: {pool_limit}
telemetry:
  enabled: false
"""
WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: cnpj_assets.definitions
      location_name: {location}
"""
CODE_LOCATION = "cnpj_assets"
POOL_LIMIT_VARIABLE = "CNPJ_LOAD_POOL_LIMIT"
DEFAULT_POOL_LIMIT = 2


def pool_limit() -> int:
    return int(os.environ.get(POOL_LIMIT_VARIABLE) or DEFAULT_POOL_LIMIT)


def prepare_instance_home(server: ServerUrl) -> Path:
    """Write dagster.yaml, prepare Dagster's storage, set DAGSTER_HOME and the storage URL."""
    storage = dagster_storage(server)
    storage.prepare()
    home = cnpj_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML.format(pool_limit=pool_limit()))
    (home / "workspace.yaml").write_text(WORKSPACE_YAML.format(location=CODE_LOCATION))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_PG_URL"] = storage.sqlalchemy_url()
    return home


def apply_pool_limit(instance: dg.DagsterInstance, pool: str) -> None:
    """Bring an existing pool to CNPJ_LOAD_POOL_LIMIT, through the instance's API.

    dagster.yaml's default only reaches a pool when it is first used. Changed later,
    Dagster 1.13.27 tries to re-insert the pool's row on every claim and every step
    fails (UniqueViolation on concurrency_limits_concurrency_key_key); setting the limit
    here first avoids that. A limit set in the UI is kept unless the variable is set.
    """
    current = {limit.name: limit for limit in instance.event_log_storage.get_pool_limits()}
    existing = current.get(pool)
    if existing is None or existing.limit == pool_limit():
        return
    if existing.from_default or os.environ.get(POOL_LIMIT_VARIABLE):
        instance.event_log_storage.set_concurrency_slots(pool, pool_limit())


def instance_environment(server: ServerUrl) -> dict[str, str]:
    """The variables that point `dagster` and `dg` at what `cnpj-assets` uses: the same
    home (so the same embedded server), instance, database and landing folder."""
    home = prepare_instance_home(server)
    return {
        "CNPJ_HOME": str(cnpj_home()),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": os.environ["DAGSTER_PG_URL"],
        "CNPJ_LANDING_DIR": str(default_landing_dir()),
    }


def get_instance(server: ServerUrl) -> dg.DagsterInstance:
    """The project's instance, with the table loads' pool at its configured limit."""
    prepare_instance_home(server)
    instance = dg.DagsterInstance.get()
    apply_pool_limit(instance, LOAD_POOL)
    return instance
