"""The Receita Federal source as a Dagster resource: where the share is and how to fetch.

Every setting has the real share's value as default (the download's come from
DownloadSettings, where their reasons are); CNPJ_RECEITA_URL (and CNPJ_RECEITA_LEGACY_URL)
point the code location elsewhere, the way the tests point it at a server of their own on
127.0.0.1.
"""

from __future__ import annotations

import os

import dagster as dg

from cnpj_assets.source.client import ShareClient
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.settings import DownloadSettings

SHARE_URL = "https://arquivos.receitafederal.gov.br/public.php/webdav/"
SHARE_TOKEN = "YggdBLfdninEJX9"  # public: it is the share's own link, not a secret
LEGACY_URL = "https://arquivos.receitafederal.gov.br/dados/cnpj/dados_abertos_cnpj/"


class ReceitaSourceResource(dg.ConfigurableResource):
    """The Nextcloud share of the CNPJ open data, with the old HTML index as fallback."""

    share_url: str = SHARE_URL
    share_token: str = SHARE_TOKEN
    legacy_url: str = LEGACY_URL  # empty: no fallback
    timeout_seconds: float = 60.0  # listings; a download waits stall_timeout_seconds
    min_download_streams: int = DownloadSettings.min_streams
    max_download_streams: int = DownloadSettings.max_streams
    stall_timeout_seconds: float = DownloadSettings.stall_timeout_seconds
    max_stalls_per_file: int = DownloadSettings.max_stalls_per_file
    file_deadline_seconds: float = DownloadSettings.file_deadline_seconds
    max_attempts: int = DownloadSettings.max_attempts
    backoff_seconds: float = DownloadSettings.backoff_seconds
    max_backoff_seconds: float = DownloadSettings.max_backoff_seconds

    def client(self) -> ShareClient:
        return ShareClient(
            share_url=self.share_url,
            share_token=self.share_token,
            legacy_url=self.legacy_url or None,
            timeout=self.timeout_seconds,
        )

    def download_settings(self) -> DownloadSettings:
        return DownloadSettings(
            min_streams=self.min_download_streams,
            max_streams=self.max_download_streams,
            stall_timeout_seconds=self.stall_timeout_seconds,
            max_stalls_per_file=self.max_stalls_per_file,
            file_deadline_seconds=self.file_deadline_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
        )

    def list_releases(self) -> list[str]:
        """The YYYY-MM releases on the source, oldest first."""
        return self.client().list_releases()

    def list_files(self, release: str) -> list[RemoteFile]:
        """A release's zips, with sizes where the layout gives them."""
        return self.client().list_files(release)


def build_source_resource() -> ReceitaSourceResource:
    """The resource the code location runs with: the real share unless the env says else."""
    return ReceitaSourceResource(
        share_url=os.environ.get("CNPJ_RECEITA_URL") or SHARE_URL,
        legacy_url=os.environ.get("CNPJ_RECEITA_LEGACY_URL", LEGACY_URL),
    )
