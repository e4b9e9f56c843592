"""The Dagster instance: runs and events in the same PostgreSQL server, database `dagster`.

The project writes `$CNPJ_HOME/dagster/dagster.yaml` and points DAGSTER_HOME at it, so
the CLI's loads and the UI share one instance; `cnpj-assets env` exports the same
variables for Dagster's own CLI. Beside it, `workspace.yaml` names the code location
`cnpj_assets`, as pyproject.toml and deploy/ do. The storage URL is read from the
environment variable DAGSTER_PG_URL by Dagster itself, so it is never written to disk.
With the pinned versions it must use the `postgresql+psycopg2://` driver. The table
assets share the concurrency pool `cnpj_postgres`; its limit (default 2, the number of
loads that hit PostgreSQL at once across all runs) comes from CNPJ_LOAD_POOL_LIMIT.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from cnpj_assets.landing import default_landing_dir
from cnpj_assets.postgres.server import DAGSTER_DATABASE, ServerUrl, cnpj_home, ensure_database

DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
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


def prepare_instance_home(server: ServerUrl) -> Path:
    """Write dagster.yaml, create the `dagster` database, set DAGSTER_HOME and the URL."""
    ensure_database(server, DAGSTER_DATABASE)
    home = cnpj_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    pool_limit = int(os.environ.get(POOL_LIMIT_VARIABLE, "2"))
    (home / "dagster.yaml").write_text(DAGSTER_YAML.format(pool_limit=pool_limit))
    (home / "workspace.yaml").write_text(WORKSPACE_YAML.format(location=CODE_LOCATION))
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_PG_URL"] = server.sqlalchemy(DAGSTER_DATABASE)
    return home


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
    prepare_instance_home(server)
    return dg.DagsterInstance.get()
