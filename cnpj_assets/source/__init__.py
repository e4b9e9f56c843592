"""The Receita Federal source: the share's listings, the download, its asset and sensor."""

from __future__ import annotations

from cnpj_assets.source.assets import (
    RELEASE_FILES_KEY,
    download_and_load_job,
    download_job,
    release_files,
)
from cnpj_assets.source.resource import ReceitaSourceResource, build_source_resource
from cnpj_assets.source.sensor import share_sensor

__all__ = [
    "RELEASE_FILES_KEY",
    "ReceitaSourceResource",
    "build_source_resource",
    "download_and_load_job",
    "download_job",
    "release_files",
    "share_sensor",
]
