"""The Dagster code location: assets, checks, jobs, sensors, the retention schedule and
resources."""

import dagster as dg

from cnpj_assets.defs.after_publication import after_publication_job, after_publication_sensor
from cnpj_assets.defs.assets import TABLE_ASSETS, load_release_job
from cnpj_assets.defs.changes import changes
from cnpj_assets.defs.checks import TABLE_CHECKS
from cnpj_assets.defs.cnaes_secundarias import cnaes_secundarias
from cnpj_assets.defs.completo import cnpj_completo
from cnpj_assets.defs.parquet import export_parquet_job, parquet, parquet_sensor
from cnpj_assets.defs.publication import cnpj_current
from cnpj_assets.defs.regime import (
    REGIME_CHECKS,
    load_regime_job,
    regime_job,
    regime_sensor,
    regime_tributario,
    regime_tributario_files,
)
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.defs.run_log_retention import purge_run_log_lines_job, purge_run_log_lines_schedule
from cnpj_assets.defs.search_indexes import (
    search_indexes,
)
from cnpj_assets.defs.sensors import landing_sensor
from cnpj_assets.source import (
    build_source_resource,
    download_and_load_job,
    download_job,
    release_files,
    share_sensor,
)

defs = dg.Definitions(
    assets=[
        *TABLE_ASSETS,
        cnaes_secundarias,
        cnpj_completo,
        cnpj_current,
        changes,
        release_files,
        parquet,
        search_indexes,
        regime_tributario_files,
        regime_tributario,
    ],
    asset_checks=[*TABLE_CHECKS, REGIME_CHECKS],
    jobs=[
        load_release_job,
        after_publication_job,
        download_job,
        download_and_load_job,
        export_parquet_job,
        regime_job,
        load_regime_job,
        purge_run_log_lines_job,
    ],
    sensors=[
        landing_sensor,
        share_sensor,
        after_publication_sensor,
        parquet_sensor,
        regime_sensor,
    ],
    schedules=[purge_run_log_lines_schedule],
    resources={**build_resources(), "receita": build_source_resource()},
)


def release_job() -> dg.JobDefinition:
    """The declared `load_release` job, reconstructable: what the CLI's loads execute."""
    return defs.resolve_job_def(load_release_job.name)


def release_after_publication_job() -> dg.JobDefinition:
    """The declared `after_publication` job, reconstructable: run by the CLI after a load."""
    return defs.resolve_job_def(after_publication_job.name)


def release_download_job() -> dg.JobDefinition:
    """The declared `download_release` job, reconstructable: what `cnpj-assets download` runs."""
    return defs.resolve_job_def(download_job.name)


def regime_load_job() -> dg.JobDefinition:
    """The declared `load_regime_tributario` job: what `cnpj-assets regime load` runs."""
    return defs.resolve_job_def(load_regime_job.name)


def regime_download_job() -> dg.JobDefinition:
    """The declared `regime_tributario` job: what `cnpj-assets regime download` runs."""
    return defs.resolve_job_def(regime_job.name)
