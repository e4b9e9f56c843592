"""DDL of the `cnpj_audit` schema: one table per level of the load hierarchy.

table_load -> file_load -> batch_load -> subbatch_load, each row with its parent's id,
status, timestamps, counts and error; rejected_row keeps every refused input line, and
check_count what the quality checks counted during the load, publication every attempt
to publish a release.
Data rows point at subbatch_load.id through their `_subbatch_id` column.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql

from cnpj_assets.postgres.access import ensure_schema

AUDIT_SCHEMA = "cnpj_audit"
AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS cnpj_audit.table_load (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    release text NOT NULL,
    asset_key text,
    partition_key text,
    dagster_run_id text,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0,
    rejects bigint NOT NULL DEFAULT 0,
    seconds double precision,
    target_table text,
    duplicate_keys bigint,
    error text
);

CREATE TABLE IF NOT EXISTS cnpj_audit.file_load (
    id bigserial PRIMARY KEY,
    table_load_id bigint NOT NULL REFERENCES cnpj_audit.table_load (id),
    zip_name text NOT NULL,
    member_name text,
    sha256 text,
    zip_bytes bigint,
    member_bytes bigint,
    lines bigint,
    blank_lines bigint,
    continuation_lines bigint,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    rejects bigint NOT NULL DEFAULT 0,
    seconds double precision,
    invalid_values jsonb,
    error text
);

CREATE TABLE IF NOT EXISTS cnpj_audit.batch_load (
    id bigserial PRIMARY KEY,
    file_load_id bigint NOT NULL REFERENCES cnpj_audit.file_load (id),
    batch_index integer NOT NULL,
    first_row bigint NOT NULL,
    last_row bigint NOT NULL,
    first_line bigint,
    last_line bigint,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    rejects bigint NOT NULL DEFAULT 0,
    seconds double precision,
    error text
);

CREATE TABLE IF NOT EXISTS cnpj_audit.subbatch_load (
    id bigserial PRIMARY KEY,
    batch_load_id bigint NOT NULL REFERENCES cnpj_audit.batch_load (id),
    subbatch_index integer NOT NULL,
    first_row bigint NOT NULL,
    last_row bigint NOT NULL,
    first_line bigint,
    last_line bigint,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    rejects bigint NOT NULL DEFAULT 0,
    seconds double precision,
    error text
);

CREATE TABLE IF NOT EXISTS cnpj_audit.rejected_row (
    id bigserial PRIMARY KEY,
    file_load_id bigint NOT NULL REFERENCES cnpj_audit.file_load (id),
    line bigint NOT NULL,
    record bigint,
    raw text NOT NULL,
    reason text NOT NULL
);

ALTER TABLE cnpj_audit.file_load
    ADD COLUMN IF NOT EXISTS blank_lines bigint,
    ADD COLUMN IF NOT EXISTS continuation_lines bigint,
    ADD COLUMN IF NOT EXISTS header_lines bigint,
    ADD COLUMN IF NOT EXISTS resumed_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE cnpj_audit.table_load
    ADD COLUMN IF NOT EXISTS resumed_from bigint REFERENCES cnpj_audit.table_load (id),
    ADD COLUMN IF NOT EXISTS index_seconds double precision;

-- what the quality checks need, counted while the rows were read (or the key was built):
-- rows checked and failing, and the failing values [{"value", "rows", "line"}] by value
CREATE TABLE IF NOT EXISTS cnpj_audit.check_count (
    id bigserial PRIMARY KEY,
    table_load_id bigint NOT NULL REFERENCES cnpj_audit.table_load (id),
    file_load_id bigint REFERENCES cnpj_audit.file_load (id),
    check_name text NOT NULL,
    column_name text NOT NULL,
    checked bigint NOT NULL,
    failed bigint NOT NULL,
    failed_values bigint,
    sample jsonb NOT NULL,
    sample_complete boolean NOT NULL
);

-- every publication attempt: published (cnpj_current moved), kept (an older release:
-- cnpj_current stays) or refused (with the checks that failed)
CREATE TABLE IF NOT EXISTS cnpj_audit.publication (
    id bigserial PRIMARY KEY,
    release text NOT NULL,
    previous_release text,
    outcome text NOT NULL,
    forced boolean NOT NULL DEFAULT false,
    reason text NOT NULL,
    dagster_run_id text,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- a release dropped by retention keeps its audit rows, marked here
ALTER TABLE cnpj_audit.table_load ADD COLUMN IF NOT EXISTS dropped_at timestamptz;
ALTER TABLE cnpj_audit.table_load ADD COLUMN IF NOT EXISTS dropped_bytes bigint;

CREATE INDEX IF NOT EXISTS check_count_table_load_id ON cnpj_audit.check_count (table_load_id);
CREATE INDEX IF NOT EXISTS file_load_table_load_id ON cnpj_audit.file_load (table_load_id);
CREATE INDEX IF NOT EXISTS batch_load_file_load_id ON cnpj_audit.batch_load (file_load_id);
CREATE INDEX IF NOT EXISTS subbatch_load_batch_load_id ON cnpj_audit.subbatch_load (batch_load_id);
CREATE INDEX IF NOT EXISTS rejected_row_file_load_id ON cnpj_audit.rejected_row (file_load_id);

-- one row per sub-batch with its batch, file and table load: join a row's _subbatch_id here
CREATE OR REPLACE VIEW cnpj_audit.lineage AS
SELECT s.id AS subbatch_id, s.subbatch_index, s.first_row, s.last_row,
       s.first_line, s.last_line, s.rows AS subbatch_rows, s.status AS subbatch_status,
       s.finished_at AS loaded_at,
       b.id AS batch_id, b.batch_index, b.first_line AS batch_first_line,
       b.last_line AS batch_last_line,
       f.id AS file_load_id, f.zip_name, f.member_name, f.sha256, f.zip_bytes, f.member_bytes,
       f.lines AS file_lines, f.rows AS file_rows, f.rejects AS file_rejects,
       t.id AS table_load_id, t.table_name, t.release, t.status AS table_status, t.asset_key,
       t.partition_key, t.dagster_run_id, t.started_at AS table_started_at,
       t.finished_at AS table_finished_at, t.target_table
FROM cnpj_audit.subbatch_load s
JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
JOIN cnpj_audit.table_load t ON t.id = f.table_load_id;
"""


def ensure_audit_schema(connection: psycopg.Connection) -> None:
    """Create or upgrade the audit tables, once: a current schema is left untouched.

    Every table load opens the audit, and the DDL takes exclusive locks even when it
    changes nothing (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`): run each time, it
    queued readers of the audit and deadlocked with a check reading it in parallel.
    The comment of `table_load` carries the DDL's hash (a table the role owns: the
    schema may be an admin's); only a different one runs the DDL, under an advisory
    lock that keeps parallel steps apart; a step that waited for it looks again, since
    running the DDL a second time, beside a step already using the tables, deadlocked
    (seen on a fresh database). The schema itself is used as it is when it exists
    (postgres/access.py).
    """
    marker = f"cnpj_audit DDL sha256 {hashlib.sha256(AUDIT_DDL.encode()).hexdigest()}"
    if _current_marker(connection) == marker:
        return
    ensure_schema(connection, AUDIT_SCHEMA)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_audit.schema'))")
        if _current_marker(connection) == marker:
            return  # a parallel step ran it while this one waited for the lock
        connection.execute(AUDIT_DDL)
        connection.execute(
            sql.SQL("COMMENT ON TABLE cnpj_audit.table_load IS {}").format(sql.Literal(marker))
        )


def _current_marker(connection: psycopg.Connection) -> str | None:
    """The comment of `cnpj_audit.table_load`, read from the catalogs with this statement's
    snapshot. `to_regclass` looks the name up in the backend's cache, which may still hold
    "no such table" after another step created it (no lock taken, no invalidation read):
    a step that waited for the DDL's lock then ran the DDL again beside steps using the
    tables, and deadlocked with them."""
    row = connection.execute(
        "SELECT d.description FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_description d ON d.objoid = c.oid "
        "AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 "
        "WHERE n.nspname = 'cnpj_audit' AND c.relname = 'table_load'"
    ).fetchone()
    return row[0] if row else None
