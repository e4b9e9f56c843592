"""One release out of PostgreSQL: each table, the lineage beside them, the manifest last.

Only a release that passed its checks (published, or kept as an older one) is exported
unless forced: files travel far from the checks that refused them. Each table is read
once, sorted by its key, without its `release` column (the path carries it) and with
its `_subbatch_id`; the `lineage` table holds the audit's lineage rows of the loads
exported, so a row of the files still leads to its zip, member and lines. A table
reloaded while it was read fails the export rather than mixing two loads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cnpj_assets.audit.queries import CompletedLoad, latest_completed_load
from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.export.csv_files import write_csv
from cnpj_assets.export.destination import Destination
from cnpj_assets.export.formats import PARQUET
from cnpj_assets.export.manifest import ExportedTable, build_manifest, write_manifest
from cnpj_assets.export.parquet_files import write_parquet
from cnpj_assets.export.rows import CopyOut, arrow_schema, record_batches
from cnpj_assets.one_line_error import OneLineError
from cnpj_assets.postgres.tables import LINEAGE_COLUMN, SCHEMA, child_name
from cnpj_assets.releases.publication import KEPT, PUBLISHED
from cnpj_assets.specs import TABLES

LINEAGE = "lineage"
LINEAGE_SORT = ("subbatch_id",)

_PUBLICATION = """
SELECT outcome, reason, forced, previous_release, dagster_run_id, published_at
FROM cnpj_audit.publication WHERE release = %s ORDER BY id DESC LIMIT 1
"""


class NotExportable(OneLineError):
    """The release was refused (or never checked), or a table is not loaded."""


@dataclass(frozen=True)
class ReleaseExport:
    """What an export wrote: each table's files, the manifest, how long it took."""

    release: str
    file_format: str
    tables: list[ExportedTable]
    manifest_path: str
    seconds: float


def publication_of(connection: psycopg.Connection, release: str) -> dict[str, Any] | None:
    """The release's last publication attempt, if any."""
    with connection.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(_PUBLICATION, (release,)).fetchone()


def table_query(name: str, release: str) -> sql.Composed:
    """The release's rows of a table, sorted by its key: its columns and `_subbatch_id`.

    Read from the release's attached child: on the partitioned parent the planner
    offers only the key's index for the order, not a (parallel) sort.
    """
    spec = TABLES[name]
    return sql.SQL("SELECT {columns} FROM {table} WHERE release = {release} ORDER BY {key}").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, (*spec.column_names, LINEAGE_COLUMN))),
        table=sql.Identifier(SCHEMA, child_name(spec, release)),
        release=sql.Literal(release),
        key=sql.SQL(", ").join(map(sql.Identifier, spec.index_columns)),
    )


def lineage_query(table_load_ids: Sequence[int]) -> sql.Composed:
    """The audit's lineage of the given loads, one row per sub-batch."""
    return sql.SQL(
        "SELECT * FROM cnpj_audit.lineage WHERE table_load_id = ANY({ids}::bigint[]) "
        "ORDER BY {sort}"
    ).format(
        ids=sql.Literal(list(table_load_ids)),
        sort=sql.SQL(", ").join(map(sql.Identifier, LINEAGE_SORT)),
    )


@dataclass(frozen=True)
class _Target:
    """Where and how one export writes: the release, the format and the destination."""

    release: str
    file_format: str
    destination: Destination


def _export(
    connection: psycopg.Connection,
    target: _Target,
    name: str,
    query: sql.Composed,
    sort: Sequence[str],
    load: CompletedLoad | None,
) -> ExportedTable:
    """Write one query's rows under `table=<name>/release=<r>/`, replacing what was there."""
    started = time.perf_counter()
    destination = target.destination
    folder = destination.table_folder(name, target.release)
    schema = arrow_schema(connection, query)
    if target.file_format == PARQUET:
        with CopyOut(connection, query, header=False) as copy:
            files = write_parquet(record_batches(copy, schema), schema, destination, folder, sort)
            sent = copy.finish()
        if sent != sum(f.rows for f in files):
            raise NotExportable(f"{name}: PostgreSQL sent {sent:,} rows, the files hold fewer")
    else:
        files = write_csv(connection, query, destination, folder)
    destination.remove_others(folder, {f"{destination.root}/{f.path}" for f in files})
    return ExportedTable(
        name=name,
        files=files,
        columns=schema,
        sorted_by=tuple(sort),
        table_load_id=load.id if load else None,
        load_run_id=load.dagster_run_id if load else None,
        seconds=time.perf_counter() - started,
    )


def _export_table(connection: psycopg.Connection, target: _Target, name: str) -> ExportedTable:
    """A table's rows from its current load; a load swapped in meanwhile fails it."""
    load = latest_completed_load(connection, name, target.release)
    if load is None:
        raise NotExportable(f"{name} has no completed load of {target.release}")
    query = table_query(name, target.release)
    exported = _export(connection, target, name, query, TABLES[name].index_columns, load)
    after = latest_completed_load(connection, name, target.release)
    if after is None or after.id != load.id:
        raise NotExportable(
            f"{name} of {target.release} was reloaded during its export; export again"
        )
    return exported


def _exportable(publication: dict[str, Any] | None, release: str, force: bool) -> None:
    if force or (publication and publication["outcome"] in (PUBLISHED, KEPT)):
        return
    why = publication["reason"] if publication else "never checked for publication"
    raise NotExportable(f"{release} is not published ({why}); export it anyway with force")


def export_release(
    database_url: str,
    release: str,
    destination: Destination,
    file_format: str = PARQUET,
    tables: Sequence[str] | None = None,
    run_id: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> ReleaseExport:
    """Export the release's tables (default all ten) and their lineage, then the manifest."""
    started = time.perf_counter()
    target = _Target(release, file_format, destination)
    exported: list[ExportedTable] = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        ensure_audit_schema(connection)
        publication = publication_of(connection, release)
        _exportable(publication, release, force)
        for name in tables or TABLES:
            exported.append(_export_table(connection, target, name))
            say(_line(exported[-1]))
        load_ids = [t.table_load_id for t in exported if t.table_load_id is not None]
        query = lineage_query(load_ids)
        exported.append(_export(connection, target, LINEAGE, query, LINEAGE_SORT, None))
        say(_line(exported[-1]))
        manifest = build_manifest(connection, release, file_format, exported, publication, run_id)
    manifest_path = write_manifest(destination, release, manifest)
    return ReleaseExport(
        release, file_format, exported, manifest_path, time.perf_counter() - started
    )


def _line(table: ExportedTable) -> str:
    rate = table.rows / table.seconds if table.seconds else 0
    return (
        f"{table.name}: {table.rows:,} rows, {len(table.files)} file(s), {table.bytes:,} bytes "
        f"in {table.seconds:.1f} s ({rate:,.0f} rows/s)"
    )
