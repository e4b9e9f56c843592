"""`cnpj-assets releases`: every release the database knows, one line each.

For each: published (and whether cnpj_current shows it), loaded but not published and
why (the last refusal: the checks that failed), dropped by retention, or not loaded
whole; its rows per table, its size on disk, when it loaded and when it was published.
Everything comes from the audit and the catalogue, so it answers in milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from cnpj_assets.audit.queries import published_release
from cnpj_assets.postgres import tables
from cnpj_assets.read.completo_view import copy_name
from cnpj_assets.specs import TABLES

_LOADS = """
SELECT DISTINCT ON (release, table_name) release, table_name, status, rows, finished_at,
       dropped_at, dropped_bytes, pg_total_relation_size(to_regclass(target_table))
FROM cnpj_audit.table_load WHERE table_name = ANY(%s)
ORDER BY release, table_name, (status = 'COMPLETED') DESC, id DESC
"""

_PUBLICATIONS = """
SELECT DISTINCT ON (release) release, outcome, reason, published_at FROM cnpj_audit.publication
ORDER BY release, id DESC
"""

_FIRST_PUBLISHED = """
SELECT release, min(published_at) FROM cnpj_audit.publication WHERE outcome = 'published'
GROUP BY release
"""

SHORT_NAMES = {"empresas": "emp", "estabelecimentos": "est", "socios": "soc", "simples": "sim"}


@dataclass
class ReleaseStatus:
    """One release as a user sees it."""

    release: str
    state: str
    why: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    loaded_at: datetime | None = None
    published_at: datetime | None = None

    def line(self) -> str:
        rows = " ".join(
            f"{SHORT_NAMES[t]} {self.rows[t] / 1e6:.2f}M" for t in SHORT_NAMES if t in self.rows
        )
        times = f"loaded {_when(self.loaded_at)}, published {_when(self.published_at)}"
        why = f" ({self.why})" if self.why else ""
        return (
            f"{self.release}  {self.state}{why}  |  {rows or 'no rows'}  |  "
            f"{self.size_bytes / 2**30:.2f} GiB  |  {times}"
        )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


def _state(
    loads: dict[str, tuple], publication: tuple | None, release: str, current: str | None
) -> tuple[str, str]:
    if release == current:
        return "published, current", ""
    if any(load[5] is not None for load in loads.values()):
        return "dropped", "by retention; audit kept"
    completed = [t for t, load in loads.items() if load[2] == "COMPLETED"]
    if len(completed) < len(TABLES):
        missing = sorted(set(TABLES) - set(completed))
        return "not loaded whole", f"no completed load of {', '.join(missing)}"
    if publication is None:
        return "loaded, not published", "no publication attempted"
    outcome, reason = publication[1], publication[2]
    if outcome == "published":
        return "published before", f"cnpj_current shows {current}"
    return f"loaded, not published: {outcome}", reason


def release_statuses(connection: psycopg.Connection) -> list[ReleaseStatus]:
    """Every release with a load, newest first."""
    loads: dict[str, dict[str, tuple]] = {}
    for row in connection.execute(_LOADS, (list(TABLES),)).fetchall():
        loads.setdefault(row[0], {})[row[1]] = row
    publications = {row[0]: row for row in connection.execute(_PUBLICATIONS).fetchall()}
    first_published = dict(connection.execute(_FIRST_PUBLISHED).fetchall())
    current = published_release(connection)
    statuses = []
    for release in sorted(loads, reverse=True):
        by_table = loads[release]
        state, why = _state(by_table, publications.get(release), release, current)
        completed = {t: load for t, load in by_table.items() if load[2] == "COMPLETED"}
        statuses.append(
            ReleaseStatus(
                release,
                state,
                why,
                {t: int(load[3]) for t, load in completed.items()},
                sum(int(load[7] or 0) for load in completed.values() if load[5] is None)
                + _copy_size(connection, release),
                max((load[4] for load in completed.values() if load[4]), default=None),
                first_published.get(release),
            )
        )
    return statuses


def releases_json(statuses: list[ReleaseStatus]) -> str:
    def encode(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    return json.dumps(
        [{k: encode(v) for k, v in asdict(s).items()} for s in statuses], indent=2, default=str
    )


def _copy_size(connection: psycopg.Connection, release: str) -> int:
    """Bytes of the release's cnpj_completo table copy, if one was made."""
    row = connection.execute(
        "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
        (f"{tables.SCHEMA}.{copy_name(release)}",),
    ).fetchone()
    return int(row[0]) if row else 0
