"""`manifest.json` of an exported release: what is in the files and why to trust them.

A reader without access to the database learns from it the release, the files of each
table with their rows, bytes and sha256, the source zips (with their sha256, so the
files lead back to the Receita's), the quality checks and their outcomes, the
publication, and the Dagster runs that loaded and exported the release.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.rows import dict_row

from cnpj_assets.defs.checks import CheckMode, QualityConfig, evaluate
from cnpj_assets.export.destination import Destination, WrittenFile
from cnpj_assets.quality.rules import check_names
from cnpj_assets.specs import TABLES

SCHEMA_VERSION = 1  # raised when a file's columns or the manifest's shape change

_SOURCE_ZIPS = """
SELECT t.table_name AS table, f.zip_name, f.member_name, f.sha256, f.zip_bytes, f.rows,
       f.rejects, f.id AS file_load_id
FROM cnpj_audit.file_load f JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
WHERE t.id = ANY(%s) ORDER BY t.table_name, f.zip_name
"""


@dataclass(frozen=True)
class ExportedTable:
    """One table (or the lineage) of the export: its files and where its rows came from."""

    name: str
    files: list[WrittenFile]
    columns: pa.Schema
    sorted_by: tuple[str, ...]
    table_load_id: int | None  # the load whose rows were exported
    load_run_id: str | None  # the Dagster run of that load
    seconds: float

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def _checks(connection: psycopg.Connection, table: str, release: str) -> list[dict[str, Any]]:
    """The table's checks on the release, from the counts its load kept (no scan)."""
    if table not in TABLES:
        return []
    spec = TABLES[table]
    config = QualityConfig(mode=CheckMode.IN_LOAD)
    return [
        {
            "name": result.check_name,
            "passed": result.passed,
            "severity": result.severity.value if result.severity else None,
            "description": result.description,
        }
        for result in evaluate(connection, spec, release, check_names(spec), config)
    ]


def _table_entry(
    connection: psycopg.Connection, release: str, exported: ExportedTable
) -> dict[str, Any]:
    return {
        "rows": exported.rows,
        "bytes": exported.bytes,
        "sorted_by": list(exported.sorted_by),
        "columns": [{"name": f.name, "type": str(f.type)} for f in exported.columns],
        "table_load_id": exported.table_load_id,
        "load_dagster_run_id": exported.load_run_id,
        "files": [asdict(f) for f in exported.files],
        "checks": _checks(connection, exported.name, release),
    }


def build_manifest(
    connection: psycopg.Connection,
    release: str,
    file_format: str,
    exported: list[ExportedTable],
    publication: dict[str, Any] | None,
    run_id: str | None,
) -> dict[str, Any]:
    """The manifest of one release's export, as a JSON-ready dict."""
    load_ids = [t.table_load_id for t in exported if t.table_load_id is not None]
    with connection.cursor(row_factory=dict_row) as cursor:
        zips = cursor.execute(_SOURCE_ZIPS, (load_ids,)).fetchall()
    return {
        "release": release,
        "schema_version": SCHEMA_VERSION,
        "format": file_format,
        "layout": f"table={{table}}/release={release}/part-{{n:05d}}.{file_format}",
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dagster_run_id": run_id,
        "publication": publication,
        "tables": {t.name: _table_entry(connection, release, t) for t in exported},
        "source_zips": zips,
    }


def write_manifest(destination: Destination, release: str, manifest: dict[str, Any]) -> str:
    """Write it beside the data (last, once every file is in); its relative path."""
    path = destination.manifest_path(release)
    output = destination.open(path)
    try:
        output.write(json.dumps(manifest, indent=1, default=str, ensure_ascii=False).encode())
    finally:
        output.close()
    return destination.relative(path)
