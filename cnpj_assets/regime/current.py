"""`cnpj_current.regime_tributario`: the newest snapshot loaded, whatever the monthly
release. A load of an older snapshot (a backfill) never moves it backwards; the view
moves with a brief lock, so its readers (cnpj_completo among them) wait a moment at most.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.postgres.brief_locks import LockPolicy, with_brief_locks
from cnpj_assets.regime.spec import REGIME_TRIBUTARIO

CURRENT_SCHEMA = "cnpj_current"
VIEW = sql.Identifier(CURRENT_SCHEMA, REGIME_TRIBUTARIO.name)


def newest_snapshot(connection: psycopg.Connection) -> str | None:
    """The newest snapshot with a completed load still attached."""
    row = connection.execute(
        "SELECT max(t.release) FROM cnpj_audit.table_load t "
        "WHERE t.table_name = %s AND t.status = 'COMPLETED' "
        "AND to_regclass(format('%%I.%%I', %s::text, %s || '_' || replace(t.release, '-', '_'))) "
        "IS NOT NULL",
        (REGIME_TRIBUTARIO.name, tables.SCHEMA, REGIME_TRIBUTARIO.name),
    ).fetchone()
    return row[0] if row else None


def point_current(
    connection: psycopg.Connection,
    policy: LockPolicy | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> str | None:
    """Point the view at the newest snapshot (no rows before the first load); return it.

    The connection must be in autocommit mode.
    """
    tables.ensure_parent(connection, REGIME_TRIBUTARIO)
    ensure_schema(connection, CURRENT_SCHEMA)
    newest = newest_snapshot(connection)

    def move() -> None:
        connection.execute(
            sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT * FROM {} WHERE release = {}").format(
                VIEW, tables.qualified(REGIME_TRIBUTARIO.name), sql.Literal(newest)
            )
        )

    with_brief_locks(
        connection,
        policy or LockPolicy(),
        f"pointing {CURRENT_SCHEMA}.{REGIME_TRIBUTARIO.name} at {newest}",
        lambda: [f"{CURRENT_SCHEMA}.{REGIME_TRIBUTARIO.name}"],
        move,
        say,
    )
    return newest


def ensure_current(connection: psycopg.Connection) -> None:
    """Create the view if it is missing (cnpj_completo reads it); an existing one is left alone."""
    found = connection.execute(
        "SELECT to_regclass(%s)", (f"{CURRENT_SCHEMA}.{REGIME_TRIBUTARIO.name}",)
    ).fetchone()
    if found is None or found[0] is None:
        point_current(connection)
