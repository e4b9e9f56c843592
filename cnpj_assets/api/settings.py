"""What `cnpj-assets serve` reads from the environment, resolved once per process.

The API may connect as a role of its own that can only SELECT (`CNPJ_API_DATABASE_URL`);
unset, it uses the loader's server (`CNPJ_DATABASE_URL` or the embedded one). Every
uvicorn worker builds its app from the environment, so `serve` writes the resolved URL
there before the workers start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cnpj_assets.postgres.server import server_url
from cnpj_assets.postgres.url import check_url

URL_VARIABLE = "CNPJ_API_DATABASE_URL"


def _number(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    return int(text) if text.strip() else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    pool_size: int  # connections per worker process
    statement_timeout_ms: int  # a statement past it is cancelled: 503, never a stuck worker
    max_age: int  # Cache-Control max-age of answers about the published release

    @classmethod
    def from_environment(cls) -> Settings:
        url = os.environ.get(URL_VARIABLE)
        if url:
            check_url(url, URL_VARIABLE)
        return cls(
            database_url=url or server_url().url,
            pool_size=_number("CNPJ_API_POOL_SIZE", 8),
            statement_timeout_ms=_number("CNPJ_API_STATEMENT_TIMEOUT_MS", 5000),
            max_age=_number("CNPJ_API_MAX_AGE", 300),
        )
