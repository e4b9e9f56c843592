"""`cnpj-assets serve`: uvicorn running the API's app, one pool per worker process."""

from __future__ import annotations

import os

import uvicorn

from cnpj_assets.api.settings import URL_VARIABLE, Settings


def serve(host: str, port: int, workers: int) -> int:
    """Resolve the database once (starting the embedded server if that is the one), hand
    it to the workers through the environment, and serve until stopped."""
    os.environ[URL_VARIABLE] = Settings.from_environment().database_url
    uvicorn.run(
        "cnpj_assets.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )
    return 0
