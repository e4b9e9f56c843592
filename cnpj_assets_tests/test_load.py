"""Materialize the ten assets for a synthetic release with quirks, on a real PostgreSQL."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from cnpj_assets.landing import discover_release
from cnpj_assets.load.loader import LoadSettings, TableLoader
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.server import ServerUrl, ensure_database
from cnpj_assets.specs import TABLES
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import (
    count_rows,
    database_of_its_own,
    materialize,
    query,
    rewrite_member,
    table_rows,
)
from cnpj_assets_tests.oracle import read_table, typed_rows


@pytest.fixture(scope="module")
def loaded(postgres_server: ServerUrl, quirks_landing: Path) -> dg.ExecuteInProcessResult:
    result = materialize(quirks_landing, RELEASE)
    assert result.success
    return result


@pytest.mark.parametrize("table", list(TABLES))
def test_row_counts_equal_the_lines_minus_the_rejects(
    loaded: dg.ExecuteInProcessResult, postgres_server: ServerUrl, quirks_landing: Path, table: str
) -> None:
    oracle = read_table(quirks_landing, RELEASE, table)
    expected = sum(len(f.good) for f in oracle.values())
    assert count_rows(postgres_server, table) == expected
    rejected = query(
        postgres_server,
        """SELECT f.zip_name, r.line FROM cnpj_audit.rejected_row r
           JOIN cnpj_audit.file_load f ON f.id = r.file_load_id
           JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
           WHERE t.dagster_run_id = %s AND t.table_name = %s ORDER BY 1, 2""",
        (loaded.run_id, table),
    )
    expected_rejects = sorted((name, line) for name, f in oracle.items() for line in f.bad)
    assert rejected == expected_rejects


def test_the_quirks_release_has_rejects_and_multiline_rows(quirks_landing: Path) -> None:
    oracle = {}
    for table in ("estabelecimentos", "empresas", "socios"):
        oracle |= read_table(quirks_landing, RELEASE, table)
    assert sum(len(f.bad) for f in oracle.values()) >= 2
    assert any("\n" in field for f in oracle.values() for _, record in f.good for field in record)


@pytest.mark.parametrize("table", list(TABLES))
def test_values_round_trip(
    loaded, postgres_server: ServerUrl, quirks_landing: Path, table: str
) -> None:
    """Every value of every row equals the source field, typed by the oracle, not the reader."""
    assert table_rows(postgres_server.url, table) == typed_rows(quirks_landing, RELEASE, table)


def test_the_compared_values_hold_every_kind_the_layout_names(quirks_landing: Path) -> None:
    """The comparison above covers accents, leading zeros, alphanumeric CNPJs, NULL and
    real dates, decimals and multi-line text: the quirks release has each of them."""
    empresas = list(typed_rows(quirks_landing, RELEASE, "empresas"))
    establishments = list(typed_rows(quirks_landing, RELEASE, "estabelecimentos"))
    started = TABLES["estabelecimentos"].column_names.index("data_inicio_atividade")
    municipio = TABLES["estabelecimentos"].column_names.index("municipio")
    assert any(ch in (row[1] or "") for row in empresas for ch in "ÃÇÉÕÁ")
    assert any(not row[0].isdigit() for row in empresas)
    assert any(row[4] is not None and row[4] != row[4].to_integral_value() for row in empresas)
    assert any(row[municipio].startswith("0") for row in establishments)
    assert {row[started] is None for row in establishments} == {True, False}
    assert any("\n" in (row[4] or "") for row in establishments)


FINE_GRAINED = LoadSettings(scratch_dir=Path("unused"), batch_rows=100, subbatch_rows=30)


@pytest.fixture(scope="module")
def fine_grained(postgres_server: ServerUrl, quirks_landing: Path, tmp_path_factory) -> ServerUrl:
    """The establishments loaded in sub-batches of 30 rows, in a database of their own: a
    sub-batch's line range then tells a row's lines to within a few dozen."""
    ensure_database(postgres_server, "cnpj_fine_grained")
    own = ServerUrl(postgres_server.database("cnpj_fine_grained"))
    settings = replace(FINE_GRAINED, scratch_dir=tmp_path_factory.mktemp("fine_scratch"))
    TableLoader(own.url, settings, lambda _: None).load(
        TABLES["estabelecimentos"], discover_release(quirks_landing, RELEASE)
    )
    return own


def test_multiline_values_and_their_lines(fine_grained: ServerUrl, quirks_landing: Path) -> None:
    """Every row's sub-batch spans the physical lines of its record, multi-line ones whole."""
    rows = query(
        fine_grained,
        """SELECT e.cnpj_basico, e.cnpj_ordem, e.cnpj_dv, e.nome_fantasia, f.zip_name,
                  s.first_line, s.last_line
           FROM cnpj.estabelecimentos e
           JOIN cnpj_audit.subbatch_load s ON s.id = e._subbatch_id
           JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
           JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
           WHERE e.release = %s""",
        (RELEASE,),
    )
    spans: dict[tuple[str, ...], list[tuple[str | None, str, int, int]]] = {}
    for *key, name, zip_name, first, last in rows:
        spans.setdefault(tuple(key), []).append((name, zip_name, first, last))
    subbatches = {(zip_name, first) for found in spans.values() for _, zip_name, first, _ in found}
    oracle = read_table(quirks_landing, RELEASE, "estabelecimentos")
    assert len(subbatches) >= sum(len(f.good) for f in oracle.values()) // 30
    multiline = 0
    for zip_name, f in oracle.items():
        for start, record in f.good:
            end = start + sum(v.count("\n") for v in record)
            multiline += end > start
            name = record[4].replace("\x00", "") or None
            assert any(
                (found_name, found_zip) == (name, zip_name) and first <= start and end <= last
                for found_name, found_zip, first, last in spans[tuple(record[:3])]
            ), (
                f"{zip_name} line {start}: {record[:3]} is in no sub-batch spanning lines {start}-{end}"
            )
    assert multiline > 0


def test_the_ui_plots_measures_only_and_rounded(loaded: dg.ExecuteInProcessResult) -> None:
    """The UI plots every int and float: no audit id among them, durations and rates rounded."""
    for event in loaded.get_asset_materialization_events():
        metadata = event.materialization.metadata
        plotted = {
            label: value.value
            for label, value in metadata.items()
            if isinstance(value, dg.IntMetadataValue | dg.FloatMetadataValue)
        }
        assert {"seconds", "rows_per_second", "dagster/row_count"} <= plotted.keys()
        assert not [label for label in plotted if label.endswith("_id")]
        assert all(round(value, 2) == value for value in plotted.values()), plotted
        assert metadata["table_load_id"].value.isdigit()


def test_audit_tree_adds_up_and_matches_metadata(loaded, postgres_server: ServerUrl) -> None:
    materializations = loaded.get_asset_materialization_events()
    assert len(materializations) == len(TABLES)
    for event in materializations:
        metadata = event.materialization.metadata
        load_id = int(metadata["table_load_id"].value)
        table_rows, status, seconds, index_seconds = query(
            postgres_server,
            "SELECT rows, status, seconds, index_seconds FROM cnpj_audit.table_load WHERE id = %s",
            (load_id,),
        )[0]
        assert status == "COMPLETED"
        assert metadata["dagster/row_count"].value == table_rows
        assert 0 < index_seconds < seconds, "the key and index build is timed within the load"
        assert metadata["index_seconds"].value == round(index_seconds, 2)
        levels = query(
            postgres_server,
            """SELECT
                 (SELECT sum(rows) FROM cnpj_audit.file_load WHERE table_load_id = %(id)s),
                 (SELECT sum(b.rows) FROM cnpj_audit.batch_load b JOIN cnpj_audit.file_load f
                    ON f.id = b.file_load_id WHERE f.table_load_id = %(id)s),
                 (SELECT sum(s.rows) FROM cnpj_audit.subbatch_load s
                    JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
                    JOIN cnpj_audit.file_load f ON f.id = b.file_load_id WHERE f.table_load_id = %(id)s),
                 (SELECT count(*) FROM cnpj_audit.subbatch_load s
                    JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
                    JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
                    WHERE f.table_load_id = %(id)s AND s.status <> 'COMPLETED')""",
            {"id": load_id},
        )[0]
        assert levels[:3] == (table_rows, table_rows, table_rows)
        assert levels[3] == 0
        table = event.asset_key.path[-1]
        assert metadata["dagster/table_name"].value == f"cnpj.{table}_{RELEASE.replace('-', '_')}"
        lineage = query(
            postgres_server,
            f"""SELECT count(*) FROM cnpj.{table} d
                JOIN cnpj_audit.subbatch_load s ON s.id = d._subbatch_id
                JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
                JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
                WHERE f.table_load_id = %s AND d.release = %s""",
            (load_id, RELEASE),
        )[0][0]
        assert lineage == table_rows


def test_rematerializing_replaces_the_release_exactly(
    postgres_server: ServerUrl, quirks_landing: Path
) -> None:
    """Identical input again: the same rows, written anew by the second load, one child.

    In a database of its own, so the module's load stays the one its tests look at."""
    with database_of_its_own(postgres_server, "cnpj_rematerialized") as own:
        assert materialize(quirks_landing, RELEASE, ["cnaes", "empresas"]).success
        before = table_rows(own.url, "empresas")
        assert before == typed_rows(quirks_landing, RELEASE, "empresas")
        again = materialize(quirks_landing, RELEASE, ["cnaes", "empresas"])
        assert again.success
        assert table_rows(own.url, "empresas") == before
        written_by = query(
            own,
            """SELECT DISTINCT t.dagster_run_id FROM cnpj.empresas e
               JOIN cnpj_audit.subbatch_load s ON s.id = e._subbatch_id
               JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
               JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
               JOIN cnpj_audit.table_load t ON t.id = f.table_load_id WHERE e.release = %s""",
            (RELEASE,),
        )
        children = query(
            own,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'empresas' "
            "AND pg_get_expr(c.relpartbound, c.oid) = %s",
            (f"FOR VALUES IN ('{RELEASE}')",),
        )
    assert written_by == [(again.run_id,)], "every row was written by the re-run"
    assert children == [("empresas_2026_10",)]


def test_a_reload_of_changed_files_replaces_the_rows_and_readers_see_one_whole_table(
    postgres_server: ServerUrl, quirks_landing: Path, tmp_path: Path
) -> None:
    """Readers see the old rows, all of them, while the new ones load and while the swap
    waits; then the new files' rows, exactly: no old row kept, none missing.

    The swap is held in the middle: a transaction of the test's keeps the new child
    locked, so the swap, holding the parent, waits on it (and lets readers through
    between its attempts). A swap that detached the old child in a transaction of its
    own would show readers an empty release meanwhile.
    """
    ensure_database(postgres_server, "cnpj_replace")
    own = postgres_server.database("cnpj_replace")
    landing = tmp_path / "landing"
    (landing / RELEASE).mkdir(parents=True)
    for name in TABLES["empresas"].zip_names():
        shutil.copy(quirks_landing / RELEASE / name, landing / RELEASE / name)
    settings = LoadSettings(scratch_dir=tmp_path / "scratch", lock_deadline_seconds=60)
    TableLoader(own, settings, lambda _: None).load(
        TABLES["empresas"], discover_release(landing, RELEASE)
    )
    old = table_rows(own, "empresas")
    assert old == typed_rows(landing, RELEASE, "empresas")
    rewrite_member(landing / RELEASE / "Empresas1.zip", lambda records: records[5:])
    rewrite_member(
        landing / RELEASE / "Empresas2.zip",
        lambda records: [[r[0], r[1] + " RENAMED", *r[2:]] for r in records],
    )
    new = typed_rows(landing, RELEASE, "empresas")
    assert new != old

    holder = psycopg.connect(own)
    swap_waiting = threading.Event()
    seen_while_loading: list[Counter] = []

    def progress(message: str) -> None:
        if "building key and indexes" in message:
            seen_while_loading.append(table_rows(own, "empresas"))
            (child,) = holder.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'cnpj' "
                "AND tablename LIKE 'empresas\\_2026\\_10\\_load%%'"
            ).fetchone()
            holder.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.Identifier("cnpj", child))
            )
        if "readers go first" in message:
            swap_waiting.set()

    with ThreadPoolExecutor(1) as pool:
        reload = pool.submit(
            TableLoader(own, settings, progress).load,
            TABLES["empresas"],
            discover_release(landing, RELEASE),
        )
        try:
            assert swap_waiting.wait(timeout=120), "the swap never waited on the held child"
            counts = [
                query(
                    ServerUrl(own),
                    "SELECT count(*) FROM cnpj.empresas WHERE release = %s",
                    (RELEASE,),
                )[0][0]
                for _ in range(20)
            ]
        finally:
            holder.rollback()
            holder.close()
        reload.result(timeout=120)
    assert seen_while_loading == [old]
    assert set(counts) == {sum(old.values())}, "a reader saw part of a table mid-swap"
    assert table_rows(own, "empresas") == new


def test_published_children_are_left_to_autovacuum(loaded, postgres_server: ServerUrl) -> None:
    """Autovacuum is kept off a child only while it loads; the attached ones get it back."""
    options = query(
        postgres_server,
        "SELECT c.relname, c.reloptions FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'cnpj' AND pg_get_expr(c.relpartbound, c.oid) = %s",
        (f"FOR VALUES IN ('{RELEASE}')",),
    )
    assert {f"{table}_{RELEASE.replace('-', '_')}" for table in TABLES} <= {n for n, _ in options}
    assert [name for name, reloptions in options if reloptions] == []


def test_a_corrupt_zip_fails_naming_it_and_keeps_the_loaded_release(
    postgres_server: ServerUrl, quirks_landing: Path, tmp_path: Path
) -> None:
    """In a database of its own: the module's socios stay the ones its load wrote."""
    landing = tmp_path / "landing"
    shutil.copytree(quirks_landing / RELEASE, landing / RELEASE)
    broken = landing / RELEASE / "Socios3.zip"
    original = broken.read_bytes()
    # cut in half, then padded to be the largest zip: the loader takes the smallest
    # first, so every other file is loaded before this one fails
    largest = max(path.stat().st_size for path in broken.parent.glob("Socios*.zip"))
    broken.write_bytes(original[: len(original) // 2] + b"\0" * largest)
    with database_of_its_own(postgres_server, "cnpj_corrupt_zip") as own:
        assert materialize(quirks_landing, RELEASE, ["socios"]).success
        before = count_rows(own, "socios")
        assert before == sum(
            len(f.good) for f in read_table(quirks_landing, RELEASE, "socios").values()
        )
        result = materialize(landing, RELEASE, ["socios"])
        assert not result.success
        failure = result.get_step_failure_events()[0]
        assert "Socios3.zip" in str(failure.step_failure_data.error)
        assert count_rows(own, "socios") == before
        statuses = query(
            own,
            """SELECT t.status, f.zip_name, f.status, f.error FROM cnpj_audit.table_load t
               JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
               WHERE t.dagster_run_id = %s AND f.status = 'FAILED'""",
            (result.run_id,),
        )
        assert [(s[0], s[1], s[2]) for s in statuses] == [("FAILED", "Socios3.zip", "FAILED")]
        assert "Socios3.zip" in statuses[0][3]
        kept = query(
            own,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'cnpj' "
            "AND tablename LIKE 'socios\\_2026\\_10\\_load%%'",
        )
        assert len(kept) == 1, "the failed load's table is kept, unattached, for the next run"

        broken.write_bytes((quirks_landing / RELEASE / "Socios3.zip").read_bytes())
        fixed = materialize(landing, RELEASE, ["socios"])
        assert fixed.success
        assert count_rows(own, "socios") == before
        files = query(
            own,
            """SELECT f.zip_name, f.resumed_rows, f.rows, count(b.id) FROM cnpj_audit.table_load t
               JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
               LEFT JOIN cnpj_audit.batch_load b ON b.file_load_id = f.id
               WHERE t.dagster_run_id = %s AND t.resumed_from IS NOT NULL
               GROUP BY f.id ORDER BY f.zip_name""",
            (fixed.run_id,),
        )
        by_zip = {name: (resumed, rows, batches) for name, resumed, rows, batches in files}
        for name in (f"Socios{n}.zip" for n in range(10) if n != 3):
            resumed, rows, batches = by_zip[name]
            assert resumed == rows > 0 and batches == 0, f"{name} was read again"
        assert by_zip["Socios3.zip"][0] == 0 and by_zip["Socios3.zip"][2] > 0


def test_the_first_loads_into_a_fresh_database_create_its_parents_side_by_side(
    postgres_server: ServerUrl,
) -> None:
    """The release job's first steps create the schema and their parents at once."""
    fresh = "cnpj_fresh_schema"
    ensure_database(postgres_server, fresh)
    url = postgres_server.database(fresh)
    start = threading.Barrier(len(TABLES))

    def create(table: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            start.wait(timeout=60)
            tables.ensure_parent(connection, TABLES[table])

    try:
        with ThreadPoolExecutor(len(TABLES)) as pool:
            list(pool.map(create, TABLES))
        with psycopg.connect(url) as connection:
            parents = connection.execute(
                "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cnpj'"
            ).fetchone()[0]
        assert parents == len(TABLES)
    finally:
        with psycopg.connect(postgres_server.database("postgres"), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {fresh} WITH (FORCE)")
