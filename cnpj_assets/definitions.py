"""The Dagster code location: assets, the release job and resources."""

import dagster as dg

from cnpj_assets.assets import TABLE_ASSETS, load_release_job
from cnpj_assets.resources import build_resources

defs = dg.Definitions(
    assets=TABLE_ASSETS,
    jobs=[load_release_job],
    resources=build_resources(),
)
