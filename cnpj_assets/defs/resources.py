"""Dagster resources: the PostgreSQL server, the landing folder and the load settings.

The database URL is resolved when a run uses it (CNPJ_DATABASE_URL, else the embedded
server), never stored as resource config: config is shown in the UI, and a URL may
carry a password.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cnpj_assets.landing import Release, default_landing_dir, discover_release
from cnpj_assets.load.loader import LoadSettings
from cnpj_assets.postgres.server import cnpj_home, server_url


class PostgresResource(dg.ConfigurableResource):
    """The PostgreSQL server the tables load into."""

    def url(self) -> str:
        return server_url().url


class LandingResource(dg.ConfigurableResource):
    """The landing folder: `<landing_dir>/<YYYY-MM>/*.zip`."""

    landing_dir: str

    def release(self, name: str) -> Release:
        return discover_release(Path(self.landing_dir), name)


class LoadSettingsResource(dg.ConfigurableResource):
    """Batch sizes, encoding, DuckDB limits, COPY streams and retries of a load.

    The fields mirror loader.LoadSettings (which stays free of Dagster) and take their
    defaults from it, so the two cannot drift; see docs/performance.md ("Load settings")
    for what each one does.
    """

    scratch_dir: str
    batch_rows: int = LoadSettings.batch_rows
    subbatch_rows: int = LoadSettings.subbatch_rows
    encoding: str = LoadSettings.encoding
    duckdb_threads: int = LoadSettings.duckdb_threads
    duckdb_memory_limit: str = LoadSettings.duckdb_memory_limit
    copy_streams: int = LoadSettings.copy_streams
    full_reload: bool = LoadSettings.full_reload
    retries: int = LoadSettings.retries
    retry_backoff_seconds: float = LoadSettings.retry_backoff_seconds
    lock_timeout_ms: int = LoadSettings.lock_timeout_ms
    lock_deadline_seconds: float = LoadSettings.lock_deadline_seconds
    disk_budget_gb: float | None = LoadSettings.disk_budget_gb

    def settings(self) -> LoadSettings:
        values = self.model_dump()
        return LoadSettings(**{**values, "scratch_dir": Path(values["scratch_dir"])})


def build_resources(landing_dir: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of a run; the landing folder can be overridden (the CLI's --landing)."""
    return {
        "postgres": PostgresResource(),
        "landing": LandingResource(landing_dir=landing_dir or str(default_landing_dir())),
        "load_settings": LoadSettingsResource(scratch_dir=str(cnpj_home() / "scratch")),
    }
