"""Where the Dagster instance keeps its runs and events: `CNPJ_DAGSTER_STORAGE`.

- `schema:NAME`: a schema of the data database, the default on your own server
  (`schema:dagster`). It needs no right beyond what the load needs, and two deployments
  on one server, each with its own data database, never share their runs.
- `database:NAME`: a database of the same server, created only when it is missing and
  the role may (CREATEDB); the embedded server's default (`database:dagster`).
- `postgresql://...`: another database, by URL, used as it is.

dagster-postgres reads the URL from the environment (DAGSTER_PG_URL), so a password
is never written to disk; with the pinned versions it must name the psycopg2 driver.
A schema is selected with libpq's `options=-csearch_path=NAME`, which dagster-postgres
keeps on every connection, so Dagster creates and finds its tables there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from psycopg import sql

from cnpj_assets.one_line_error import OneLineError
from cnpj_assets.postgres.access import MissingPrivilege, connect, ensure_schema
from cnpj_assets.postgres.server import ServerUrl, own_server
from cnpj_assets.postgres.url import check_url, redact

STORAGE_VARIABLE = "CNPJ_DAGSTER_STORAGE"
DEFAULT_SCHEMA = "dagster"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class StorageSettingError(OneLineError, ValueError):
    """CNPJ_DAGSTER_STORAGE is not one of its three forms."""


@dataclass(frozen=True)
class DagsterStorage:
    """The database (and schema) of the instance's runs, events and schedules."""

    url: str  # libpq URL of the database; may carry a password
    schema: str | None = None
    create_database: str | None = None  # made on demand when missing (database:NAME)
    data_server: ServerUrl | None = None  # where it is created from: the data database

    def describe(self) -> str:
        """For the CLI's header: where the runs are, without a password."""
        where = redact(self.url, self.url)
        return f"schema {self.schema} of {where}" if self.schema else where

    def sqlalchemy_url(self) -> str:
        """The URL for dagster-postgres: psycopg2 named, the schema put first on the path."""
        parts = urlsplit(self.url)
        query = parts.query
        if self.schema:
            option = quote(f"-csearch_path={self.schema}", safe="")
            pairs = [p for p in query.split("&") if p] if query else []
            merged = [f"{p} {option}" if p.startswith("options=") else p for p in pairs]
            if merged == pairs:
                merged.append(f"options={option}")
            query = "&".join(merged)
        return urlunsplit(parts._replace(scheme="postgresql+psycopg2", query=query))

    def prepare(self) -> None:
        """Make the schema or database if missing and allowed; one clear line if not."""
        if self.create_database and self.data_server is not None:
            _ensure_database(self.data_server, self.create_database)
        if self.schema:
            with connect(self.url, autocommit=True) as connection:
                ensure_schema(connection, self.schema)


def _ensure_database(server: ServerUrl, name: str) -> None:
    """Create the database from the data database (never through `postgres`), if allowed."""
    with connect(server.url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if exists:
            return
        role, may = connection.execute(
            "SELECT rolname, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or ("", False)
        if not may:
            raise MissingPrivilege(
                f"CREATE DATABASE {name} (for Dagster's runs, {STORAGE_VARIABLE}=database:{name}) "
                f"needs the CREATEDB right, which role {role} lacks; an admin can run: CREATE "
                f"DATABASE {name} OWNER {role} (or set {STORAGE_VARIABLE}=schema:{DEFAULT_SCHEMA} "
                "to keep the runs in the data database)"
            )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise StorageSettingError(
            f"{STORAGE_VARIABLE}={kind}:{value}: a {kind} name is lowercase letters, digits and _"
        )
    return value


def dagster_storage(server: ServerUrl) -> DagsterStorage:
    """The storage `CNPJ_DAGSTER_STORAGE` names, or the default for this server."""
    default = f"schema:{DEFAULT_SCHEMA}" if own_server() else "database:dagster"
    setting = os.environ.get(STORAGE_VARIABLE) or default
    kind, _, value = setting.partition(":")
    if kind == "schema":
        return DagsterStorage(server.url, schema=_name(kind, value))
    if kind == "database":
        name = _name(kind, value)
        return DagsterStorage(server.database(name), create_database=name, data_server=server)
    if kind in ("postgresql", "postgres"):
        check_url(setting, STORAGE_VARIABLE)
        return DagsterStorage(setting)
    raise StorageSettingError(
        f"{STORAGE_VARIABLE} must be schema:NAME, database:NAME or a postgresql:// URL"
    )
