"""The audit of a table built from loaded tables (cnpj_completo, changes): no files.

Such a build is a table_load of its own, so the audit says which run built which
release, with its rows and its status, like a load's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from cnpj_assets.audit.contexts import AuditNode, AuditService


@contextmanager
def audited_build(
    database_url: str,
    table: str,
    release: str,
    asset_key: str | None,
    dagster_run_id: str | None,
) -> Iterator[tuple[psycopg.Connection, AuditNode]]:
    """A data connection (autocommit) and the build's open table_load node."""
    audit = AuditService(database_url)
    try:
        with (
            psycopg.connect(database_url, autocommit=True) as data,
            audit.table_context(
                table,
                release,
                asset_key=asset_key,
                partition_key=release,
                dagster_run_id=dagster_run_id,
            ) as node,
        ):
            yield data, node
    finally:
        audit.close()
