"""The decisions of a release's life, each pinned so that breaking it fails a test.

Publication's gate, the drift guard's reference and bounds, retention, and which release
the changes compare with are decisions taken on the audit (and, for the changes, the
catalogue): these tests write the audit rows a history of loads and publications leaves,
in a database of their own, and ask the product's own functions, so each case costs
milliseconds. What the loads write is covered where releases are loaded for real
(test_releases, test_changes). docs/guarantees-release-life.md lists the breakages
tried and the test that caught each.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.defs.checks import CheckMode, QualityConfig, evaluate
from cnpj_assets.defs.publication import release_failures
from cnpj_assets.landing import ReleaseError
from cnpj_assets.postgres import load_lock, tables
from cnpj_assets.postgres.brief_locks import LockPolicy
from cnpj_assets.postgres.server import ServerUrl, ensure_database
from cnpj_assets.quality.rules import ROW_COUNT_DRIFT
from cnpj_assets.read.cnaes_secundarias import CNAES_SECUNDARIAS
from cnpj_assets.releases.changes import COMPARISONS, previous_release
from cnpj_assets.releases.precheck import checked_release
from cnpj_assets.releases.retention import loaded_releases, retain
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import database_of_its_own, make_zip

ROWS = 1000
PRECHECKED = "2025-06"
IN_LOAD = QualityConfig(mode=CheckMode.IN_LOAD)


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_promises") as own:
        yield own


@pytest.fixture
def audit(server: ServerUrl) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an empty audit and an empty `cnpj` schema."""
    with psycopg.connect(server.url, autocommit=True) as connection:
        ensure_audit_schema(connection)
        connection.execute("TRUNCATE cnpj_audit.table_load, cnpj_audit.publication CASCADE")
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tables.SCHEMA))
        )
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tables.SCHEMA)))
        yield connection


def _default_rows(name: str) -> int:
    return 0 if name == CNAES_SECUNDARIAS.name else ROWS


def loaded(
    connection: psycopg.Connection,
    release: str,
    names: Iterable[str] = (*TABLES, CNAES_SECUNDARIAS.name),
    rows: dict[str, int] | None = None,
    status: str = "COMPLETED",
) -> None:
    """The audit rows of a load of the release's tables: ROWS rows each unless said, and
    none in cnaes_secundarias, as these loads counted no secondary activity codes."""
    for name in names:
        connection.execute(
            "INSERT INTO cnpj_audit.table_load (table_name, release, status, rows, finished_at) "
            "VALUES (%s, %s, %s, %s, clock_timestamp())",
            (name, release, status, (rows or {}).get(name, _default_rows(name))),
        )


def attempted(connection: psycopg.Connection, release: str, outcome: str) -> None:
    """A publication attempt's row: published, kept (older than the current) or refused."""
    connection.execute(
        "INSERT INTO cnpj_audit.publication (release, outcome, reason) VALUES (%s, %s, 'test')",
        (release, outcome),
    )


def history(connection: psycopg.Connection, *outcomes: tuple[str, str | None]) -> None:
    """Releases loaded whole in this order, each with its publication outcome (or none)."""
    for release, outcome in outcomes:
        loaded(connection, release)
        if outcome:
            attempted(connection, release, outcome)


def retained(connection: psycopg.Connection, keep: int, published: str) -> list[str]:
    """Retention after `published` was published: what it dropped."""
    policy = LockPolicy()
    return [d.release for d in retain(connection, keep, published, policy)]


# publication's gate


def test_a_release_loaded_whole_and_checked_has_nothing_keeping_it(audit) -> None:
    loaded(audit, "2025-01")
    assert release_failures(audit, "2025-01", IN_LOAD) == []


@pytest.mark.parametrize("lookup", [t for t, s in TABLES.items() if s.is_lookup])
def test_a_missing_or_failed_lookup_keeps_the_release_from_publication(audit, lookup) -> None:
    others = [t for t in (*TABLES, CNAES_SECUNDARIAS.name) if t != lookup]
    loaded(audit, "2025-01", others)
    loaded(audit, "2025-02", others)
    loaded(audit, "2025-02", [lookup], status="FAILED")
    for release in ("2025-01", "2025-02"):
        failures = release_failures(audit, release, IN_LOAD)
        assert failures and all(f.startswith(f"{lookup} ") for f in failures), failures
        assert f"no completed load of {lookup} for release {release}" in failures[0]


def test_checks_on_a_database_no_load_touched_fail_clearly(postgres_server: ServerUrl) -> None:
    """Whatever ran before: a database of its own, created empty here."""
    with psycopg.connect(postgres_server.database("postgres"), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cnpj_promises_empty")
    ensure_database(postgres_server, "cnpj_promises_empty")
    with psycopg.connect(postgres_server.database("cnpj_promises_empty")) as connection:
        failures = release_failures(connection, "2025-01", IN_LOAD)
    assert len(failures) == len(TABLES) * 3  # row accounting, rejects, drift per table
    assert "empresas row_accounting: no completed load of empresas for release 2025-01" in failures


# the drift guard


def drift(
    connection: psycopg.Connection, table: str, release: str, **bounds: float
) -> tuple[bool, str]:
    config = QualityConfig(mode=CheckMode.IN_LOAD, **bounds)
    (result,) = evaluate(connection, TABLES[table], release, [ROW_COUNT_DRIFT], config)
    compared = result.metadata.get("previous_release")
    return result.passed, compared.value if compared else ""


def test_drift_compares_with_the_newest_published_release_older_than_this_one(audit) -> None:
    """A new month with the current one; a backfill with the one before it, not after;
    never with a refused or merely loaded release."""
    loaded(audit, "2025-01", rows={"empresas": 1000})
    attempted(audit, "2025-01", "published")
    loaded(audit, "2025-02", rows={"empresas": 5000})  # loaded, never published
    loaded(audit, "2025-03", rows={"empresas": 2000})
    attempted(audit, "2025-03", "published")
    loaded(audit, "2025-04", rows={"empresas": 9000})
    attempted(audit, "2025-04", "refused")
    loaded(audit, "2025-05", rows={"empresas": 2000})
    assert drift(audit, "empresas", "2025-05") == (True, "2025-03")  # a new month
    assert drift(audit, "empresas", "2025-02") == (False, "2025-01")  # a backfill
    loaded(audit, "2025-02", rows={"empresas": 1000})
    assert drift(audit, "empresas", "2025-02") == (True, "2025-01")
    assert drift(audit, "empresas", "2025-01") == (True, "")  # nothing before it


@pytest.mark.parametrize(
    ("table", "rows", "bounds", "passes"),
    [
        ("empresas", 1000 * (1 - 0.004), {}, True),
        ("empresas", 1000 * (1 - 0.006), {}, False),  # shrunk past max_shrink
        ("empresas", 1000 * (1 + 0.04), {}, True),
        ("empresas", 1000 * (1 + 0.06), {}, False),  # grew past max_growth
        ("empresas", 1000 * (1 - 0.2), {"max_shrink": 0.25}, True),
        ("empresas", 1000 * (1 + 0.2), {"max_growth": 0.15}, False),
        ("cnaes", 1000 * (1 - 0.19), {}, True),
        ("cnaes", 1000 * (1 - 0.21), {}, False),  # a lookup shrunk past lookup_max_change
        ("cnaes", 1000 * (1 + 0.19), {}, True),
        ("cnaes", 1000 * (1 + 0.21), {}, False),  # a lookup grew past lookup_max_change
        ("cnaes", 1000 * (1 + 0.3), {"lookup_max_change": 0.35}, True),
    ],
)
def test_drift_refuses_past_either_bound_of_facts_and_lookups(
    audit, table: str, rows: float, bounds: dict[str, float], passes: bool
) -> None:
    loaded(audit, "2025-01")
    attempted(audit, "2025-01", "published")
    loaded(audit, "2025-02", rows={table: round(rows)})
    assert drift(audit, table, "2025-02", **bounds) == (passes, "2025-01")
    failures = release_failures(audit, "2025-02", QualityConfig(**bounds))
    assert (failures == []) is passes, failures


# retention


def test_retention_counts_published_releases_only_and_keeps_newer_refused_ones(audit) -> None:
    """Two refused months newer than the current one push no published month out."""
    history(
        audit,
        ("2025-01", "published"),
        ("2025-02", "published"),
        ("2025-03", "published"),
        ("2025-04", "refused"),
        ("2025-05", None),  # loaded, its publication never attempted
    )
    assert retained(audit, 2, "2025-03") == ["2025-01"]
    assert loaded_releases(audit) == ["2025-05", "2025-04", "2025-03", "2025-02"]


def test_retention_drops_an_unpublished_release_older_than_the_current_one(audit) -> None:
    history(
        audit,
        ("2025-01", "published"),
        ("2025-02", "refused"),
        ("2025-03", None),
        ("2025-04", "published"),
    )
    assert retained(audit, 3, "2025-04") == ["2025-02", "2025-03"]
    assert loaded_releases(audit) == ["2025-04", "2025-01"]


def test_a_backfill_that_passed_counts_as_published_history(audit) -> None:
    """Kept: whole and checked, only older than cnpj_current."""
    history(audit, ("2025-01", "published"), ("2025-03", "published"), ("2025-02", "kept"))
    assert retained(audit, 3, "2025-03") == []
    assert retained(audit, 2, "2025-03") == ["2025-01"]


def test_retention_keeps_the_published_release_and_drops_no_more_than_keep_allows(
    audit,
) -> None:
    history(audit, *((f"2025-0{m}", "published") for m in range(1, 7)), ("2025-07", "refused"))
    assert retained(audit, 4, "2025-06") == ["2025-01", "2025-02"]
    assert retained(audit, 1, "2025-06") == ["2025-03", "2025-04", "2025-05"]
    assert loaded_releases(audit) == ["2025-07", "2025-06"]
    with pytest.raises(ValueError, match="at least 1"):
        retained(audit, 0, "2025-06")


def test_retention_marks_the_audit_and_drops_what_the_release_left(audit) -> None:
    history(audit, ("2025-01", "published"), ("2025-02", "published"))
    children = [tables.child_name(spec, "2025-01") for spec in TABLES.values()]
    for name in (*TABLES, *children):
        audit.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(tables.SCHEMA, name)))
    assert retained(audit, 1, "2025-02") == ["2025-01"]
    left = audit.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        (tables.SCHEMA, children),
    ).fetchone()
    marked = audit.execute(
        "SELECT bool_and(dropped_at IS NOT NULL), count(*) FROM cnpj_audit.table_load "
        "WHERE release = '2025-01'"
    ).fetchone()
    assert left == (0,) and marked == (True, len(TABLES) + 1)


def test_retention_never_drops_a_release_being_loaded(audit, server: ServerUrl) -> None:
    history(audit, ("2025-01", "published"), ("2025-02", "published"))
    with psycopg.connect(server.url, autocommit=True) as loader:
        assert load_lock.try_lock(loader, "socios", "2025-01")
        assert retained(audit, 1, "2025-02") == []
        load_lock.unlock(loader, "socios", "2025-01")
    assert retained(audit, 1, "2025-02") == ["2025-01"]


# which release the changes compare with


def test_the_changes_compare_with_the_newest_older_release_whose_facts_are_all_there(
    audit,
) -> None:
    facts = [c.spec.name for c in COMPARISONS]
    for release in ("2024-12", "2025-01", "2025-02", "2025-03", "2025-05"):
        loaded(audit, release, facts)
        for comparison in COMPARISONS:
            child = tables.child_name(comparison.spec, release)
            audit.execute(
                sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(tables.SCHEMA, child))
            )
    audit.execute(
        sql.SQL("DROP TABLE {}").format(
            sql.Identifier(tables.SCHEMA, tables.child_name(TABLES["socios"], "2025-03"))
        )
    )  # dropped by hand: the audit still says loaded
    audit.execute(
        "UPDATE cnpj_audit.table_load SET status = 'FAILED' "
        "WHERE release = '2025-02' AND table_name = 'simples'"
    )
    assert previous_release(audit, "2025-04") == "2025-01"
    assert previous_release(audit, "2025-05") == "2025-01"
    assert previous_release(audit, "2025-01") == "2024-12"
    assert previous_release(audit, "2024-12") is None


# the release folder's precheck


@pytest.fixture(scope="module")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("promises_landing")
    write_release(release=PRECHECKED, rows=50, out_dir=landing, seed=3)
    return landing


def test_the_precheck_refuses_a_zip_it_cannot_read_or_one_of_two_members(
    small_release: Path, tmp_path: Path
) -> None:
    assert len(checked_release(small_release, PRECHECKED).files) == 37
    for name, broken in (
        ("Socios3.zip", lambda path: path.write_bytes(path.read_bytes()[:100])),
        ("Cnaes.zip", lambda path: make_zip(path, b"", {"a.csv": b"1", "b.csv": b"2"})),
    ):
        landing = tmp_path / name
        shutil.copytree(small_release, landing)
        broken(landing / PRECHECKED / name)
        with pytest.raises(ReleaseError, match=re.escape(name)) as refused:
            checked_release(landing, PRECHECKED)
        assert len(str(refused.value).splitlines()) == 1
        assert "not a readable zip" in str(refused.value) or "2 members" in str(refused.value)
