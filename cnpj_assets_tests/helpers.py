"""Helpers shared by the tests that load releases and read them back."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.utils import make_new_run_id
from psycopg import sql

from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS
from cnpj_assets.defs.publication import cnpj_current
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.server import ServerUrl, ensure_database
from cnpj_assets.runs.worker import RunWorker
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic.csvformat import join_record
from cnpj_assets_tests.conftest import RELEASE

Records = list[list[str]]
MEMBER = "F.K03200$Z.D61012.CNAECSV"  # a real cnaes member name


def make_zip(path: Path, content: bytes, members: dict[str, bytes] | None = None) -> Path:
    """A zip holding `content` as its one cnaes member, or the given `members` instead."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (members if members is not None else {MEMBER: content}).items():
            archive.writestr(name, data)
    return path


def materialize(
    landing: Path, release: str, selection: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(RELEASES.name, [release])
    assets = [a for a in TABLE_ASSETS if selection is None or a.key.path[-1] in selection]
    return dg.materialize(
        assets,
        instance=instance,
        partition_key=release,
        resources=build_resources(str(landing)),
        raise_on_error=False,
    )


def add_started_run(instance: dg.DagsterInstance, worker: RunWorker) -> str:
    """A `load_release` run that says it is STARTED in `worker`'s process; its id."""
    run_id = make_new_run_id()
    instance.add_run(
        dg.DagsterRun(
            job_name="load_release",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags=worker.tag(),
        )
    )
    return run_id


def publish(landing: Path, release: str, **config: object) -> dg.ExecuteInProcessResult:
    """The publication asset alone, as a user runs it from the launchpad."""
    return dg.materialize(
        [cnpj_current],
        instance=dg.DagsterInstance.get(),
        partition_key=release,
        resources=build_resources(str(landing)),
        run_config={"ops": {"cnpj__cnpj_current": {"config": config}}},
        raise_on_error=False,
    )


def query(server: ServerUrl, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(server.url) as connection:
        return connection.execute(statement, params).fetchall()


def count_rows(server: ServerUrl, table: str, release: str = RELEASE) -> int:
    return query(server, f"SELECT count(*) FROM cnpj.{table} WHERE release = %s", (release,))[0][0]


def table_rows(url: str, table: str, release: str = RELEASE) -> Counter[tuple]:
    """The release's rows of a table, every column but the lineage, as a multiset."""
    statement = sql.SQL("SELECT {} FROM {} WHERE release = %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in TABLES[table].column_names),
        sql.Identifier("cnpj", table),
    )
    with psycopg.connect(url) as connection:
        return Counter(connection.execute(statement, (release,)).fetchall())


def rewrite_member(zip_path: Path, change: Callable[[Records], Records]) -> None:
    """Rewrite a zip's one CSV member, record by record, in the Receita's dialect."""
    with zipfile.ZipFile(zip_path) as archive:
        (info,) = archive.infolist()
        text = archive.read(info).decode("latin-1")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"'))
    body = "".join(join_record(r) + "\n" for r in change(records))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(info.filename, body.encode("latin-1"))


@contextmanager
def database_of_its_own(server: ServerUrl, name: str, **env: str) -> Iterator[ServerUrl]:
    """A database of a test module's own, with the instance `cnpj-assets` would use on it.

    Which release is published is global state of a database: a module that runs the
    whole release job (and so publishes) keeps it from every other module's releases.
    """
    ensure_database(server, name)
    own = ServerUrl(server.database(name))
    with pytest.MonkeyPatch.context() as restore:
        restore.setenv("CNPJ_DATABASE_URL", own.url)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            restore.setenv(key, "")
        for key, value in env.items():
            restore.setenv(key, value)
        get_instance(own)
        yield own
