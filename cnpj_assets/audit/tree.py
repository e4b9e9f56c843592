"""Read one table load's audit hierarchy back as a nested dict, for Dagster metadata.

Sub-batches are summarised per batch (count, rows, bytes, id range) rather than listed:
a real release has hundreds per table, which would swamp the UI.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

_TABLE = """
SELECT id, table_name, release, status, rows, bytes, bytes_read, rejects, seconds,
       index_seconds, target_table, duplicate_keys, dagster_run_id, error
FROM cnpj_audit.table_load WHERE id = %s
"""
_FILES = """
SELECT id, zip_name, member_name, sha256, zip_bytes, member_bytes, lines, status, rows, bytes,
       rejects, seconds, invalid_values, error
FROM cnpj_audit.file_load WHERE table_load_id = %s ORDER BY id
"""
_BATCHES = """
SELECT b.file_load_id, b.id, b.batch_index, b.status, b.rows, b.bytes, b.seconds,
       b.first_line, b.last_line,
       count(s.id) AS subbatches, min(s.id) AS first_subbatch_id, max(s.id) AS last_subbatch_id
FROM cnpj_audit.batch_load b
JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
LEFT JOIN cnpj_audit.subbatch_load s ON s.batch_load_id = b.id
WHERE f.table_load_id = %s
GROUP BY b.id ORDER BY b.id
"""


def audit_tree(connection: psycopg.Connection, table_load_id: int) -> dict[str, Any]:
    """The table load with its files, each with its batches."""
    with connection.cursor(row_factory=dict_row) as cursor:
        table = cursor.execute(_TABLE, (table_load_id,)).fetchone()
        if table is None:
            raise LookupError(f"no table_load with id {table_load_id}")
        files = cursor.execute(_FILES, (table_load_id,)).fetchall()
        batches = cursor.execute(_BATCHES, (table_load_id,)).fetchall()
    by_file: dict[int, list[dict[str, Any]]] = {f["id"]: [] for f in files}
    for batch in batches:
        by_file[batch.pop("file_load_id")].append(batch)
    for file in files:
        file["batches"] = by_file[file["id"]]
    table["files"] = files
    return table
