"""Retention: keep the newest good releases in PostgreSQL, drop the rest, keep their audit.

A release takes 40-60 GB with its indexes; loading every month fills a disk within a
year. After each publication, `keep_releases` counts the good releases only: the
published one and those before it that passed the publication's gate (published then,
or kept as a backfill older than cnpj_current). A release newer than the published one
that is not published (refused, or not loaded whole yet) is kept until it is published,
forced or dropped by hand: broken months never push good history out. One older than
the published one that never passed is dropped, and so are good ones beyond the count.

Dropping a release drops every table's child of it, its secondary activities as rows,
its changes and its cnpj_completo copy, if one was made. Never the published release,
never one being loaded (its load lock is held). The audit rows stay, marked
`dropped_at` with the bytes freed, so the lineage of what was once loaded stays
answerable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.postgres import load_lock, tables
from cnpj_assets.postgres.brief_locks import LockPolicy, with_brief_locks
from cnpj_assets.read.cnaes_secundarias import CNAES_SECUNDARIAS
from cnpj_assets.read.completo_view import COMPLETO, copy_name
from cnpj_assets.releases.changes import CHANGES
from cnpj_assets.specs import TABLES, TableSpec

_LOADED_RELEASES = """
SELECT DISTINCT release FROM cnpj_audit.table_load
WHERE status = 'COMPLETED' AND dropped_at IS NULL AND table_name = ANY(%s)
ORDER BY release DESC
"""

_PASSED_GATE = """
SELECT DISTINCT release FROM cnpj_audit.publication WHERE outcome IN ('published', 'kept')
"""

_MARK_DROPPED = """
UPDATE cnpj_audit.table_load SET dropped_at = clock_timestamp(),
       dropped_bytes = CASE WHEN id = (SELECT max(id) FROM cnpj_audit.table_load
                                       WHERE table_name = %(table)s AND release = %(release)s
                                         AND status = 'COMPLETED') THEN %(bytes)s END
WHERE table_name = %(table)s AND release = %(release)s AND dropped_at IS NULL
"""


@dataclass(frozen=True)
class DroppedRelease:
    release: str
    tables: int
    freed_bytes: int


def loaded_releases(connection: psycopg.Connection) -> list[str]:
    """Releases with a completed, undropped load of some table, newest first."""
    return [row[0] for row in connection.execute(_LOADED_RELEASES, (list(TABLES),)).fetchall()]


def releases_to_drop(
    connection: psycopg.Connection, keep_releases: int, published: str
) -> list[str]:
    """The loaded releases retention drops after `published` was published, oldest first."""
    releases = loaded_releases(connection)
    passed = {row[0] for row in connection.execute(_PASSED_GATE).fetchall()} | {published}
    good = [r for r in releases if r in passed and r <= published]
    kept = set(good[:keep_releases]) | {published} | {r for r in releases if r > published}
    return sorted(set(releases) - kept)


def _is_loading(connection: psycopg.Connection, release: str) -> bool:
    """Whether a live run holds the load lock of any table of the release."""
    for table in TABLES:
        if not load_lock.try_lock(connection, table, release):
            return True
        load_lock.unlock(connection, table, release)
    return False


def _exists(connection: psycopg.Connection, name: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{tables.SCHEMA}.{name}",))
    return bool(row.fetchone()[0])


def _relation_bytes(connection: psycopg.Connection, name: str) -> int:
    row = connection.execute(
        "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (f"{tables.SCHEMA}.{name}",)
    ).fetchone()
    return int(row[0]) if row else 0


def _drop_table_of_release(
    connection: psycopg.Connection, spec: TableSpec, release: str, policy: LockPolicy
) -> int:
    """Drop one table's child of the release; returns the bytes it held."""
    table = spec.name
    child = tables.child_name(spec, release)
    freed = _relation_bytes(connection, child)
    parent = tables.qualified(table)
    if not _exists(connection, child):
        connection.execute(_MARK_DROPPED, {"table": table, "release": release, "bytes": 0})
        return 0

    def drop() -> None:
        connection.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(parent))
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tables.qualified(child)))

    with_brief_locks(
        connection,
        policy,
        f"dropping {tables.SCHEMA}.{child}",
        lambda: [f"{tables.SCHEMA}.{table}", f"{tables.SCHEMA}.{child}"],
        drop,
    )
    connection.execute(_MARK_DROPPED, {"table": table, "release": release, "bytes": freed})
    return freed


def retain(
    connection: psycopg.Connection,
    keep_releases: int,
    published: str,
    policy: LockPolicy,
    say: Callable[[str], None] = lambda _: None,
) -> list[DroppedRelease]:
    """Drop what `releases_to_drop` names, but a release being loaded.

    The connection must be in autocommit mode.
    """
    if keep_releases < 1:
        raise ValueError(f"keep_releases must be at least 1, not {keep_releases}")
    dropped = []
    for release in releases_to_drop(connection, keep_releases, published):
        if _is_loading(connection, release):
            say(f"retention: {release} is being loaded; kept for now")
            continue
        partitioned = [*TABLES.values(), CNAES_SECUNDARIAS, CHANGES]
        freed = sum(_drop_table_of_release(connection, s, release, policy) for s in partitioned)
        copy = copy_name(release)
        copy_bytes = _relation_bytes(connection, copy)
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tables.qualified(copy)))
        connection.execute(
            _MARK_DROPPED, {"table": COMPLETO.name, "release": release, "bytes": copy_bytes}
        )
        freed += copy_bytes
        dropped.append(DroppedRelease(release, len(TABLES), freed))
        say(f"retention: dropped {release} ({freed / 2**30:.2f} GiB freed); its audit rows stay")
    return dropped
