"""What a role needs on your own server, checked before it is tried, one line per missing right.

A load needs no superuser right: the role owns what it creates. What it needs is
CONNECT on the data database, and for each schema it uses (`cnpj`, `cnpj_audit`, and
`dagster` when Dagster keeps its runs there) either CREATE on the database, to make
the schema, or USAGE and CREATE on a schema an admin made. `CREATE SCHEMA IF NOT
EXISTS` is never sent: it needs CREATE on the database even when the schema exists.
Tables that already exist must belong to the role (ATTACH, DETACH and DROP need it).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg
from psycopg import sql

from cnpj_assets.one_line_error import OneLineError
from cnpj_assets.postgres.url import redact


class MissingPrivilege(OneLineError, RuntimeError):
    """A right the role lacks; the message names the statement and the GRANT that allows it."""


class ServerUnreachable(OneLineError, RuntimeError):
    """The server refused or could not take the connection; the message carries no password."""


def connect(url: str, **options: object) -> psycopg.Connection:
    """Connect, turning libpq's error into one line without the password.

    A role without CONNECT on the database gets the GRANT that would allow it.
    """
    try:
        return psycopg.connect(url, **options)
    except psycopg.OperationalError as error:
        message = redact(" ".join(str(error).split()), url)
        denied = re.search(r'permission denied for database "([^"]+)"', message)
        if denied:
            raise MissingPrivilege(
                f"cannot connect to database {denied[1]}: permission denied; an admin can run: "
                f"GRANT CONNECT ON DATABASE {denied[1]} TO {_user_of(url)}"
            ) from None
        raise ServerUnreachable(f"cannot connect to PostgreSQL: {message}") from None


def _user_of(url: str) -> str:
    """The user a URL logs in as, as written in it (libpq's default when it names none)."""
    userinfo = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
    return unquote(userinfo.partition(":")[0]) or "<your role>"


def _role_and_database(connection: psycopg.Connection) -> tuple[str, str]:
    row = connection.execute("SELECT current_user, current_database()").fetchone()
    assert row is not None
    return row[0], row[1]


def ensure_schema(connection: psycopg.Connection, schema: str) -> None:
    """Use the schema if it exists and the role may create in it; create it only if missing.

    Parallel steps may ask for the same missing schema at once: the creation is
    serialized by an advisory lock and checked again under it (two concurrent `CREATE
    SCHEMA IF NOT EXISTS` fail one of them with a duplicate key on pg_namespace).
    """
    role, database = _role_and_database(connection)
    usable = connection.execute(
        "SELECT has_schema_privilege(oid, 'USAGE') AND has_schema_privilege(oid, 'CREATE') "
        "FROM pg_namespace WHERE nspname = %s",
        (schema,),
    ).fetchone()
    if usable is not None:
        if not usable[0]:
            raise MissingPrivilege(
                f"schema {schema} exists but role {role} may not create tables in it; an admin "
                f"can run: GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}"
            )
        return
    allowed = connection.execute(
        "SELECT has_database_privilege(current_database(), 'CREATE')"
    ).fetchone()
    if not (allowed and allowed[0]):
        raise MissingPrivilege(
            f"CREATE SCHEMA {schema} needs CREATE on database {database}, which role {role} "
            f"lacks; an admin can run: GRANT CREATE ON DATABASE {database} TO {role} "
            f"(or CREATE SCHEMA {schema} AUTHORIZATION {role})"
        )
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        exists = connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def check_table_owners(connection: psycopg.Connection, schemas: list[str]) -> None:
    """Refuse, naming the fix, when a table the load replaces belongs to another role."""
    role, _ = _role_and_database(connection)
    foreign = connection.execute(
        """
        SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v')
          AND NOT pg_has_role(c.relowner, 'USAGE')
        ORDER BY 1
        """,
        (schemas,),
    ).fetchall()
    if foreign:
        table, owner = foreign[0]
        others = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise MissingPrivilege(
            f"{table}{others} belong to role {owner}, and a load must own the tables it "
            f"replaces; an admin can run: ALTER TABLE {table} OWNER TO {role} (for each)"
        )


def check_access(url: str, schemas: list[str]) -> None:
    """What a load needs on the data database, checked (and schemas made) before a run starts."""
    with connect(url, autocommit=True) as connection:
        for schema in schemas:
            ensure_schema(connection, schema)
        check_table_owners(connection, schemas)
