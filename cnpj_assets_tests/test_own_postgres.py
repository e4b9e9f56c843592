"""Your own PostgreSQL with plain roles: nothing beyond the data they own, errors that name the GRANT.

Two roles as a managed database gives them, both LOGIN and nothing else: one owns the
data database, the other has only CREATE on a database another role owns. CONNECT on
`postgres` is revoked from everyone, as managed servers do. Each role runs the CLI
(fake-release, load, lineage) and launches a load through the UI's GraphQL API; the
server's log must stay free of errors. A third role, with less, gets one line naming
the right it lacks, until an admin grants it; schemas an admin made are used as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cnpj_assets.cli import main
from cnpj_assets.instance import prepare_instance_home
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.dagster_processes import (
    launch_load,
    row_count_metadata,
    running_dagster,
)
from cnpj_assets_tests.helpers import count_rows, query
from cnpj_assets_tests.oracle import read_table

CLI_RELEASE = "2027-03"  # written and loaded through the CLI
UI_RELEASE = "2027-04"  # launched through GraphQL
PASSWORD = "p%40ss%20w%2Frd"  # "p@ss w/rd", percent-encoded as a URL needs it
CLI = str(Path(sys.executable).with_name("cnpj-assets"))


@dataclass(frozen=True)
class Deployment:
    """A plain role, its data database, and the environment its commands run in."""

    role: str
    server: ServerUrl
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "CNPJ_DATABASE_URL": self.server.url,
            "CNPJ_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, **self.env()}
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            environment.pop(key, None)
        return subprocess.run(
            [CLI, *args], env=environment, capture_output=True, text=True, timeout=600
        )


SETUPS = {
    "owns its database": [
        "CREATE ROLE {role} LOGIN PASSWORD 'p@ss w/rd'",
        "CREATE DATABASE {database} OWNER {role}",
    ],
    "has only CREATE on a database": [
        "CREATE ROLE {role} LOGIN PASSWORD 'p@ss w/rd'",
        "CREATE DATABASE {database}",
        "GRANT CREATE ON DATABASE {database} TO {role}",
    ],
}


def as_admin(server: ServerUrl, connect_to: str, *statements: str, **names: str) -> None:
    """Run statements as the superuser in `connect_to`; {role}, {database}... are identifiers."""
    identifiers = {key: sql.Identifier(value) for key, value in names.items()}
    with psycopg.connect(server.database(connect_to), autocommit=True) as admin:
        for statement in statements:
            admin.execute(sql.SQL(statement).format(**identifiers))


def drop(server: ServerUrl, role: str, database: str) -> None:
    with psycopg.connect(server.database("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def role_url(server: ServerUrl, role: str, database: str) -> ServerUrl:
    return ServerUrl(
        ServerUrl(server.url.replace("postgres:@", f"{role}:{PASSWORD}@")).database(database)
    )


@pytest.fixture(scope="module")
def no_postgres_database(postgres_server: ServerUrl) -> Iterator[None]:
    """CONNECT on `postgres` revoked from PUBLIC, as on managed servers; given back after."""
    as_admin(postgres_server, "postgres", "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
    yield
    as_admin(postgres_server, "postgres", "GRANT CONNECT ON DATABASE postgres TO PUBLIC")


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("own_landing")
    # the rows of CLI_RELEASE (`fake-release --rows 400`, seed 0), which it follows: a
    # smaller release is refused publication by the drift guard, and its run fails
    write_release(release=UI_RELEASE, rows=400, out_dir=folder, seed=0)
    return folder


@pytest.fixture(scope="module", params=SETUPS, ids=["owner", "create-only"])
def deployment(
    request: pytest.FixtureRequest,
    postgres_server: ServerUrl,
    no_postgres_database: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    index = list(SETUPS).index(request.param)
    role, database = f"cnpj_plain{index}", f"cnpj_plain{index}_data"
    as_admin(postgres_server, "postgres", *SETUPS[request.param], role=role, database=database)
    yield Deployment(role, role_url(postgres_server, role, database), tmp_path_factory.mktemp(role))
    drop(postgres_server, role, database)


def server_log(embedded_home: Path) -> Path:
    return embedded_home / "pgdata" / "log"


def test_the_cli_loads_and_traces_a_release_with_no_right_beyond_its_data(
    deployment: Deployment, embedded_home: Path, landing: Path
) -> None:
    log_start = server_log(embedded_home).stat().st_size
    made = deployment.run(
        "fake-release", "--release", CLI_RELEASE, "--rows", "400", "--out", str(landing)
    )
    assert made.returncode == 0, made.stderr
    loaded = deployment.run("load", "--release", CLI_RELEASE, "--landing", str(landing))
    assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr[-3000:]
    expected = sum(len(f.good) for f in read_table(landing, CLI_RELEASE, "empresas").values())
    assert count_rows(deployment.server, "empresas", CLI_RELEASE) == expected
    ((cnpj,),) = query(
        deployment.server,
        "SELECT cnpj_basico || cnpj_ordem || cnpj_dv FROM cnpj.estabelecimentos "
        "WHERE release = %s ORDER BY 1 LIMIT 1",
        (CLI_RELEASE,),
    )
    traced = deployment.run("lineage", cnpj)
    assert traced.returncode == 0, traced.stderr
    assert "Estabelecimentos" in traced.stdout
    owners = query(
        deployment.server,
        "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
        "WHERE nspname IN ('cnpj', 'cnpj_audit', 'cnpj_current', 'dagster') ORDER BY 1",
    )
    assert owners == [
        (schema, deployment.role) for schema in ("cnpj", "cnpj_audit", "cnpj_current", "dagster")
    ]
    assert query(deployment.server, "SELECT to_regclass('dagster.runs') IS NOT NULL") == [(True,)]
    with server_log(embedded_home).open() as log:
        log.seek(log_start)
        errors = [line for line in log if "ERROR" in line or "FATAL" in line]
    assert errors == [], "the server's log must stay clean"


def test_a_load_launched_through_graphql_runs_as_the_plain_role(
    deployment: Deployment, landing: Path, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as environment:
        for key, value in deployment.env().items():
            environment.setenv(key, value)
        with running_dagster(deployment.server, landing, tmp_path) as dagster:
            run_id = launch_load(dagster, UI_RELEASE)
            dagster.wait_for_success(run_id)
            for table in TABLES:
                rows, materialized_by = row_count_metadata(dagster, table, UI_RELEASE)
                assert (rows, materialized_by) == (
                    count_rows(deployment.server, table, UI_RELEASE),
                    run_id,
                )


@pytest.fixture
def lesser_role(
    postgres_server: ServerUrl, no_postgres_database: None, tmp_path: Path
) -> Iterator[Deployment]:
    """A LOGIN role with CONNECT (from PUBLIC) on a database it cannot create in."""
    role, database = "cnpj_lesser", "cnpj_lesser_data"
    as_admin(
        postgres_server,
        "postgres",
        "CREATE ROLE {role} LOGIN",
        "CREATE DATABASE {database}",
        role=role,
        database=database,
    )
    yield Deployment(role, role_url(postgres_server, role, database), tmp_path / "home")
    drop(postgres_server, role, database)


def one_line_error(deployment: Deployment, landing: Path, capsys: pytest.CaptureFixture) -> str:
    """What `cnpj-assets load` says as the role: the one line it must fail with."""
    with pytest.MonkeyPatch.context() as environment:
        for key, value in deployment.env().items():
            environment.setenv(key, value)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            environment.setenv(key, "")
        status = main(["load", "--release", UI_RELEASE, "--landing", str(landing)])
    out, err = capsys.readouterr()
    assert status == 1 and err.count("\n") == 1, out[-2000:] + err
    return err


def test_a_missing_right_is_one_line_naming_the_grant_and_granted_the_load_runs(
    lesser_role: Deployment,
    postgres_server: ServerUrl,
    landing: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    names = {"role": lesser_role.role, "database": "cnpj_lesser_data"}
    assert (
        "GRANT CREATE ON DATABASE cnpj_lesser_data TO cnpj_lesser (or CREATE SCHEMA cnpj "
        "AUTHORIZATION cnpj_lesser)" in one_line_error(lesser_role, landing, capsys)
    )
    as_admin(postgres_server, "cnpj_lesser_data", "CREATE SCHEMA cnpj", **names)
    assert "GRANT USAGE, CREATE ON SCHEMA cnpj TO cnpj_lesser" in one_line_error(
        lesser_role, landing, capsys
    )
    as_admin(
        postgres_server,
        "cnpj_lesser_data",
        "GRANT USAGE, CREATE ON SCHEMA cnpj TO {role}",
        "CREATE SCHEMA cnpj_audit AUTHORIZATION {role}",
        "CREATE SCHEMA cnpj_current AUTHORIZATION {role}",
        "CREATE TABLE cnpj.paises (codigo text)",
        **names,
    )
    assert "ALTER TABLE cnpj.paises OWNER TO cnpj_lesser" in one_line_error(
        lesser_role, landing, capsys
    )
    as_admin(postgres_server, "cnpj_lesser_data", "DROP TABLE cnpj.paises", **names)
    assert "CREATE SCHEMA dagster needs CREATE on database cnpj_lesser_data" in one_line_error(
        lesser_role, landing, capsys
    )
    as_admin(
        postgres_server, "postgres", "REVOKE CONNECT ON DATABASE {database} FROM PUBLIC", **names
    )
    assert "GRANT CONNECT ON DATABASE cnpj_lesser_data TO cnpj_lesser" in one_line_error(
        lesser_role, landing, capsys
    )
    as_admin(
        postgres_server,
        "postgres",
        "GRANT CONNECT ON DATABASE {database} TO {role}",
        **names,
    )
    as_admin(
        postgres_server,
        "cnpj_lesser_data",
        "CREATE SCHEMA dagster",
        "GRANT USAGE, CREATE ON SCHEMA dagster TO {role}",
        **names,
    )
    loaded = lesser_role.run("load", "--release", UI_RELEASE, "--landing", str(landing))
    assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr[-3000:]
    assert count_rows(lesser_role.server, "paises", UI_RELEASE) == 255


def test_dagsters_own_database_is_created_only_when_the_role_may(
    lesser_role: Deployment,
    postgres_server: ServerUrl,
    landing: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = {"role": lesser_role.role, "database": "cnpj_lesser_data", "runs": "cnpj_lesser_runs"}
    as_admin(postgres_server, "postgres", "GRANT CREATE ON DATABASE {database} TO {role}", **names)
    monkeypatch.setenv("CNPJ_DAGSTER_STORAGE", "database:cnpj_lesser_runs")
    assert "CREATE DATABASE cnpj_lesser_runs OWNER cnpj_lesser" in one_line_error(
        lesser_role, landing, capsys
    )
    as_admin(postgres_server, "postgres", "ALTER ROLE {role} CREATEDB", **names)
    try:
        for key, value in {**lesser_role.env(), "DAGSTER_HOME": "", "DAGSTER_PG_URL": ""}.items():
            monkeypatch.setenv(key, value)
        prepare_instance_home(lesser_role.server)
        assert query(
            postgres_server,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'cnpj_lesser_runs'",
        ) == [("cnpj_lesser",)]
    finally:
        as_admin(
            postgres_server, "postgres", "DROP DATABASE IF EXISTS {runs} WITH (FORCE)", **names
        )
