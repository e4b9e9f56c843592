"""Publishing a release: the `cnpj_current` views move to it, all at once, or not at all.

Readers who want "the current CNPJ data" read `cnpj_current.<table>`: one view per table
(and cnpj_completo, cnaes_secundarias) over the newest published release. A release is
published only whole (every table loaded) and checked (every ERROR-level check passed); a forced
publication is a deliberate, recorded act. An older release (a backfill) never moves
the views backwards. Every attempt, published or not, is a row of
`cnpj_audit.publication`, so "why is 2026-11 not current?" has an answer.

The views move in one transaction whose locks are taken briefly (`brief_locks`): a
reader of `cnpj_current` waits at most the lock timeout, and sees either the old release
in every view or the new one in every view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.audit.queries import published_release
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.postgres.brief_locks import LockPolicy, with_brief_locks
from cnpj_assets.read import cnaes_secundarias, completo_view
from cnpj_assets.read.search_function import create_search_function
from cnpj_assets.specs import TABLES

CURRENT_SCHEMA = "cnpj_current"
VIEWS = (*TABLES, cnaes_secundarias.CNAES_SECUNDARIAS.name, completo_view.COMPLETO.name)
PUBLISHED, KEPT, REFUSED = "published", "kept", "refused"


@dataclass(frozen=True)
class Publication:
    """What an attempt did: its outcome, the release shown before, and why."""

    release: str
    outcome: str
    previous: str | None
    reason: str
    forced: bool


def _record(connection: psycopg.Connection, publication: Publication, run_id: str | None) -> None:
    connection.execute(
        "INSERT INTO cnpj_audit.publication (release, previous_release, outcome, forced, "
        "reason, dagster_run_id) VALUES (%s, %s, %s, %s, %s, %s)",
        (
            publication.release,
            publication.previous,
            publication.outcome,
            publication.forced,
            publication.reason,
            run_id,
        ),
    )


def _point_views(connection: psycopg.Connection, release: str) -> None:
    """Every cnpj_current view over the release's rows (replaced, or re-created when a
    table's columns changed since the view was made), and the search function over it."""
    ensure_schema(connection, CURRENT_SCHEMA)
    for name in VIEWS:
        view = sql.Identifier(CURRENT_SCHEMA, name)
        select = (
            cnaes_secundarias.published_rows(release)
            if name == cnaes_secundarias.CNAES_SECUNDARIAS.name
            else sql.SQL("SELECT * FROM {} WHERE release = {}").format(
                tables.qualified(name), sql.Literal(release)
            )
        )
        try:
            with connection.transaction():
                connection.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, select))
        except psycopg.errors.InvalidTableDefinition:
            connection.execute(sql.SQL("DROP VIEW {}").format(view))
            connection.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, select))
    create_search_function(connection, CURRENT_SCHEMA, release)
    connection.execute(
        sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(CURRENT_SCHEMA), sql.Literal(f"the published CNPJ release: {release}")
        )
    )


def _locked_relations(connection: psycopg.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT c.oid::regclass::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'v'",
        (CURRENT_SCHEMA,),
    ).fetchall()
    return [name for (name,) in rows]


def publish(
    connection: psycopg.Connection,
    release: str,
    failures: Sequence[str],
    run_id: str | None,
    policy: LockPolicy,
    force_reason: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Publication:
    """Publish the release unless `failures` (what keeps it from being whole and checked)
    say otherwise; `force_reason` publishes it anyway, and is recorded.

    The decision and the move happen in one transaction under an advisory lock, so two
    runs publishing at once cannot move cnpj_current backwards. The connection must be
    in autocommit mode.
    """
    forced = bool(failures) and force_reason is not None
    if failures and not forced:
        outcome = Publication(
            release, REFUSED, published_release(connection), "; ".join(failures), False
        )
        _record(connection, outcome, run_id)
        return outcome
    completo_view.ensure_view(connection)
    cnaes_secundarias.ensure_parent(connection)

    def decide_and_move() -> Publication:
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_current'))")
        previous = published_release(connection)
        if previous is not None and release < previous:
            reason = f"older than the published {previous}: cnpj_current stays there"
            outcome = Publication(release, KEPT, previous, reason, False)
        else:
            reason = (
                f"forced: {force_reason} (despite: {'; '.join(failures)})"
                if forced
                else f"all {len(TABLES)} tables loaded and every ERROR-level check passed"
            )
            outcome = Publication(release, PUBLISHED, previous, reason, forced)
            _point_views(connection, release)
        _record(connection, outcome, run_id)
        return outcome

    return with_brief_locks(
        connection,
        policy,
        f"publishing {release} in {CURRENT_SCHEMA}",
        lambda: _locked_relations(connection),
        decide_and_move,
        say,
    )
