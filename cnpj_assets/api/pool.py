"""The API's connections: a psycopg pool of read-only sessions with a statement timeout.

Sessions are in autocommit, so a lookup (one statement, one snapshot) costs one round
trip; what needs several statements (lineage, history) opens a transaction, which the
session makes REPEATABLE READ READ ONLY: all its statements see one snapshot, so no
answer mixes the state before and after a publication. `default_transaction_read_only`
keeps even the loader's role from writing through the API. Statements are prepared at
their first use and run with a generic plan: planning cnpj_completo's joins costs
more than running them for one CNPJ.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from cnpj_assets.api.settings import Settings


def configure(connection: psycopg.Connection) -> None:
    """A session as the API uses it (also the benchmark's reference)."""
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    connection.prepare_threshold = 0


def session_options(statement_timeout_ms: int) -> dict[str, object]:
    """The connection arguments of an API session."""
    options = (
        f"-c statement_timeout={statement_timeout_ms} "
        "-c default_transaction_read_only=on -c plan_cache_mode=force_generic_plan "
        "-c application_name=cnpj-assets-api"
    )
    return {"autocommit": True, "options": options}


def open_pool(settings: Settings) -> ConnectionPool:
    """A pool that connects in the background; a request waits at most 10 s for a session."""
    return ConnectionPool(
        settings.database_url,
        kwargs=session_options(settings.statement_timeout_ms),
        min_size=min(2, settings.pool_size),
        max_size=settings.pool_size,
        configure=configure,
        timeout=10,
        name="cnpj-assets-api",
        open=True,
    )
