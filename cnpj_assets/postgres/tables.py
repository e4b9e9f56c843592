"""The `cnpj` schema, built from the specs: partitioned parents and per-release children.

A load writes into a fresh child table that nobody reads, builds its key and indexes
after the COPY (several times faster than maintaining them row by row), and then swaps
it in: detach and drop the release's old child, attach the new one, in one
transaction. A re-run thus replaces a release exactly, and readers never see half a
table. Every identifier goes through psycopg.sql.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.postgres.brief_locks import LockPolicy, with_brief_locks
from cnpj_assets.quality.duplicate_keys import DuplicateKeys, count_duplicate_keys
from cnpj_assets.specs import TableSpec

SCHEMA = "cnpj"
LINEAGE_COLUMN = "_subbatch_id"


def _columns_ddl(spec: TableSpec) -> sql.Composed:
    """Typed columns; codes compare byte-wise (COLLATE "C"): their natural order, and key
    builds faster than under the database's default collation."""
    columns = [sql.SQL("release text NOT NULL")]
    columns += [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.kind.pg_type),
            sql.SQL(' COLLATE "C"') if c.kind.is_code else sql.SQL(""),
        )
        for c in spec.columns
    ]
    columns.append(sql.SQL("{} bigint NOT NULL").format(sql.Identifier(LINEAGE_COLUMN)))
    return sql.SQL(", ").join(columns)


def qualified(name: str) -> sql.Identifier:
    """A table of the `cnpj` schema, as a schema-qualified identifier."""
    return sql.Identifier(SCHEMA, name)


def ensure_parent(connection: psycopg.Connection, spec: TableSpec) -> None:
    """Create the schema and the table's partitioned parent if they are missing.

    An existing parent is left alone (no DDL, no lock, no CREATE right needed). Loads
    running side by side create them under an advisory lock: two concurrent `CREATE
    ... IF NOT EXISTS` can both find the object missing, and one then fails.
    """
    exists = connection.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{spec.name}",)).fetchone()
    if exists and exists[0] is not None:
        return
    ensure_schema(connection, SCHEMA)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        connection.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}) PARTITION BY LIST (release)").format(
                qualified(spec.name), _columns_ddl(spec)
            )
        )
        connection.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                qualified(spec.name), sql.Literal(spec.description)
            )
        )


def child_name(spec: TableSpec, release: str) -> str:
    """The attached child's name, e.g. estabelecimentos_2026_10."""
    return f"{spec.name}_{release.replace('-', '_')}"


@dataclass(frozen=True)
class LoadingChild:
    """A child table being filled for one table load; unattached until swapped in."""

    spec: TableSpec
    release: str
    name: str

    @property
    def identifier(self) -> sql.Identifier:
        return qualified(self.name)

    @property
    def copy_columns(self) -> list[str]:
        return [*self.spec.column_names, LINEAGE_COLUMN]


def loading_child(spec: TableSpec, release: str, table_load_id: int) -> LoadingChild:
    """The child a load fills, named after its audit id so two loads never collide."""
    return LoadingChild(spec, release, f"{child_name(spec, release)}_load{table_load_id}")


def create_loading_child(
    connection: psycopg.Connection, spec: TableSpec, release: str, table_load_id: int
) -> LoadingChild:
    """Create the fresh, unattached child of this load, in one transaction.

    A process killed between the CREATE and the release default used to leave a child
    without the default, which the next run adopted and could not COPY into.

    Autovacuum stays off the child until it is swapped in: a vacuum of a table still
    being filled is wasted, and one that started during the load made CREATE INDEX wait
    `deadlock_timeout`.
    """
    ensure_parent(connection, spec)
    child = loading_child(spec, release, table_load_id)
    with connection.transaction():
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(child.identifier))
        connection.execute(
            sql.SQL(
                "CREATE TABLE {child} (LIKE {parent}, CHECK (release = {release})) "
                "WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
            ).format(
                child=child.identifier,
                parent=qualified(spec.name),
                release=sql.Literal(release),
            )
        )
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN release SET DEFAULT {}").format(
                child.identifier, sql.Literal(release)
            )
        )
    return child


def build_indexes(connection: psycopg.Connection, child: LoadingChild) -> DuplicateKeys:
    """Build the key (unique where the data allows) and lookup indexes; return duplicates.

    A key that the data violates is never forced by dropping rows: the unique build
    fails, the index is built non-unique instead, and the repeated key values are
    counted (with a sample) for the metadata and the key_uniqueness check. The lineage
    column gets a BRIN index: its values grow with the file, so a few pages index
    millions of rows.
    """
    connection.execute("SET maintenance_work_mem = '512MB'")
    duplicates = DuplicateKeys()
    if child.spec.key:
        try:
            with connection.transaction():
                _create_key_index(connection, child, unique=True)
        except psycopg.errors.UniqueViolation:
            duplicates = count_duplicate_keys(connection, child.identifier, child.spec.key)
            _create_key_index(connection, child, unique=False)
    else:
        _create_key_index(connection, child, unique=False)
    connection.execute(
        sql.SQL("CREATE INDEX {} ON {} USING brin ({})").format(
            sql.Identifier(f"{child.name}_lineage"),
            child.identifier,
            sql.Identifier(LINEAGE_COLUMN),
        )
    )
    connection.execute(sql.SQL("ANALYZE {}").format(child.identifier))
    return duplicates


def has_indexes(connection: psycopg.Connection, child: LoadingChild) -> bool:
    """Whether the child has its key and lineage indexes: a resumed load built them before
    its swap failed. A build cut short (one of the two) has them dropped to start over."""
    names = [
        name
        for (name,) in connection.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
            (f"{SCHEMA}.{child.name}",),
        ).fetchall()
    ]
    if len(names) == 2:
        return True
    for name in names:
        connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(*name.split("."))))
    return False


def _create_key_index(connection: psycopg.Connection, child: LoadingChild, unique: bool) -> None:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in child.spec.index_columns)
    connection.execute(
        sql.SQL("CREATE {unique}INDEX {index} ON {child} ({columns})").format(
            unique=sql.SQL("UNIQUE ") if unique else sql.SQL(""),
            index=sql.Identifier(f"{child.name}_key"),
            child=child.identifier,
            columns=columns,
        )
    )


def swap_in(
    connection: psycopg.Connection,
    child: LoadingChild,
    policy: LockPolicy,
    say: Callable[[str], None],
) -> str:
    """Replace the release's attached child with this one, atomically; return its name.

    The locks are taken briefly (`brief_locks`): readers of the table wait at most the
    policy's timeout, and a swap that cannot get its locks before the deadline fails
    naming who holds them, leaving this child as it is for the next run to swap in.
    """
    final = child_name(child.spec, child.release)
    parent = qualified(child.spec.name)

    def swap() -> None:
        _cancel_blocking_autovacuum_soon(connection)
        connection.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(parent))
        for old in _attached_children(connection, child.spec.name, child.release):
            connection.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, qualified(old))
            )
            connection.execute(sql.SQL("DROP TABLE {}").format(qualified(old)))
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(final)))
        connection.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(child.identifier, sql.Identifier(final))
        )
        connection.execute(
            sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled, toast.autovacuum_enabled)").format(
                qualified(final)
            )
        )
        connection.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
                parent, qualified(final), sql.Literal(child.release)
            )
        )

    def locked() -> list[str]:
        names = [child.spec.name, *_attached_children(connection, child.spec.name, child.release)]
        return [f"{SCHEMA}.{name}" for name in names]

    with_brief_locks(connection, policy, f"swapping in {SCHEMA}.{final}", locked, swap, say)
    return f"{SCHEMA}.{final}"


def _cancel_blocking_autovacuum_soon(connection: psycopg.Connection) -> None:
    """Let PostgreSQL cancel an autovacuum of the old child after 20 ms, not 1 s.

    A freshly loaded child is soon vacuumed by autovacuum (insert threshold), slowly,
    for minutes. A reload's LOCK then waits `deadlock_timeout` (1 s by default) before
    the deadlock check cancels the autovacuum. Only a superuser (or, from PostgreSQL 15,
    a role granted SET on the parameter) may lower the timeout; anyone else keeps the
    server's. The right is looked up first: a refused SET writes an ERROR line to the
    server's log at every swap.
    """
    check = (
        "SELECT has_parameter_privilege('deadlock_timeout', 'SET')"
        if connection.info.server_version >= 150000
        else "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    allowed = connection.execute(check).fetchone()
    if allowed and allowed[0]:
        connection.execute("SET LOCAL deadlock_timeout = '20ms'")


def _attached_children(connection: psycopg.Connection, parent: str, release: str) -> list[str]:
    rows = connection.execute(
        """
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = %s AND p.relname = %s
          AND pg_get_expr(c.relpartbound, c.oid) = %s
        """,
        (SCHEMA, parent, f"FOR VALUES IN ('{release}')"),
    ).fetchall()
    return [row[0] for row in rows]


def drop_child(connection: psycopg.Connection, child: LoadingChild) -> None:
    """Remove an unattached child after a failed load; the attached release stays as it was."""
    connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(child.identifier))
