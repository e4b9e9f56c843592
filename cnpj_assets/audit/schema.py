"""DDL of the `cnpj_audit` schema: one table per level of the load hierarchy.

table_load -> file_load -> batch_load -> subbatch_load, each row with its parent's id,
status, timestamps, counts and error; rejected_row keeps every refused input line.
Data rows point at subbatch_load.id through their `_subbatch_id` column.
"""

from __future__ import annotations

import psycopg

AUDIT_DDL = """
CREATE SCHEMA IF NOT EXISTS cnpj_audit;

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
    ADD COLUMN IF NOT EXISTS continuation_lines bigint;

CREATE INDEX IF NOT EXISTS file_load_table_load_id ON cnpj_audit.file_load (table_load_id);
CREATE INDEX IF NOT EXISTS batch_load_file_load_id ON cnpj_audit.batch_load (file_load_id);
CREATE INDEX IF NOT EXISTS subbatch_load_batch_load_id ON cnpj_audit.subbatch_load (batch_load_id);
CREATE INDEX IF NOT EXISTS rejected_row_file_load_id ON cnpj_audit.rejected_row (file_load_id);
"""


def ensure_audit_schema(connection: psycopg.Connection) -> None:
    """Create the audit tables if missing; an advisory lock keeps parallel runs apart."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_audit.schema'))")
        connection.execute(AUDIT_DDL)
