"""`cnpj.cnaes_secundarias`: one row per distinct secondary code, switched and dropped with
its release, each row traceable to its establishment's zip and lines.

The module works in a database of its own (it publishes) and loads two releases through
`cnpj-assets load`, the whole job a user runs. The first release's establishments carry
the column's quirks, written into its files here: empty, one code, many, a code repeated
within an establishment, spaces around codes, a code that is not 7 digits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from cnpj_assets.cli import main
from cnpj_assets.commands import build_after_publication
from cnpj_assets.definitions import defs, release_after_publication_job
from cnpj_assets.defs import cnaes_secundarias as cnaes_build
from cnpj_assets.defs.after_publication import after_publication_sensor
from cnpj_assets.defs.assets import load_release_job
from cnpj_assets.defs.checks import QualityConfig
from cnpj_assets.defs.cnaes_secundarias import ASSET_KEY, row_accounting
from cnpj_assets.defs.publication import release_failures
from cnpj_assets.load.loader import RunInfo
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.brief_locks import LockPolicy
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.read.cnaes_secundarias import fill
from cnpj_assets.specs import ESTABELECIMENTOS
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import Records, database_of_its_own, publish, query, rewrite_member
from cnpj_assets_tests.oracle import read_table

FIRST, SECOND = "2025-04", "2025-05"
SECONDARY = ESTABELECIMENTOS.column_names.index("cnae_fiscal_secundaria")
QUIRKS = (
    "",  # no secondary activity: no row
    "6201501",  # one code
    "6201501,6202300,6203100,6204000,6209100",  # many
    "6201501,6202300,6201501",  # repeated within one establishment: one row for it
    " 6202300 , 6203100,,",  # spaces and empty pieces: trimmed, dropped
    "620150,ABC",  # not 7 digits: kept as written, counted
)
MALFORMED = {"620150", "ABC"}


def with_quirks(records: Records) -> Records:
    """The first records of the file of the right width get each quirk of the column."""
    good = [r for r in records if len(r) == len(ESTABELECIMENTOS.columns)]
    for record, value in zip(good, QUIRKS, strict=False):
        record[SECONDARY] = value
    return records


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_cnaes_secundarias") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("cnaes_secundarias_landing")
    for release in (FIRST, SECOND):
        write_release(release=release, rows=1500, out_dir=landing, seed=23)
    rewrite_member(landing / FIRST / "Estabelecimentos0.zip", with_quirks)
    return landing


def codes_of(server: ServerUrl, release: str) -> Counter[tuple]:
    return Counter(
        query(
            server,
            "SELECT cnpj_basico, cnpj_ordem, cnpj_dv, cnae FROM cnpj.cnaes_secundarias "
            "WHERE release = %s",
            (release,),
        )
    )


@dataclass(frozen=True)
class Story:
    """What the module observed along one release's life, for tests in any order."""

    first_rows: Counter[tuple]
    first_lineage: list[tuple]
    first_accounting: dg.AssetCheckResult
    first_audit: list[tuple]
    first_indexes: list[str]
    first_completo: dict[str, list]
    shown_first: list[tuple]
    shown_second: list[tuple]
    current_rows: int
    second_rows: int
    children_after_retention: list[tuple]
    first_dropped_in_audit: list[tuple]


@pytest.fixture(scope="module")
def story(server: ServerUrl, landing: Path) -> Story:
    """Load the quirky release (published), look at it, load the next one (published),
    then publish it again keeping one release: the first is dropped."""
    assert main(["load", "--release", FIRST, "--landing", str(landing)]) == 0
    line, record = quirky_records(landing)[3]  # the establishment that repeats a code
    lineage = query(
        server,
        "SELECT c.cnae, l.zip_name, l.first_line, l.last_line, l.table_name "
        "FROM cnpj.cnaes_secundarias c JOIN cnpj_audit.lineage l ON l.subbatch_id = c._subbatch_id "
        "WHERE c.release = %s AND c.cnpj_basico = %s AND c.cnpj_ordem = %s AND c.cnpj_dv = %s",
        (FIRST, *record[:3]),
    )
    with psycopg.connect(server.url, autocommit=True) as connection:
        accounting = row_accounting(connection, FIRST)
    audit = query(
        server,
        "SELECT rows, target_table FROM cnpj_audit.table_load WHERE table_name = "
        "'cnaes_secundarias' AND release = %s AND status = 'COMPLETED'",
        (FIRST,),
    )
    indexes = query(
        server,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'cnpj' AND tablename = %s",
        ("cnaes_secundarias_2025_04",),
    )
    completo = query(
        server,
        "SELECT cnpj, cnaes_secundarias FROM cnpj_current.cnpj_completo WHERE cnpj = ANY(%s)",
        (["".join(record[:3]) for _, record in quirky_records(landing)],),
    )
    shown = "SELECT DISTINCT release FROM cnpj_current.cnaes_secundarias"
    first = (codes_of(server, FIRST), lineage, accounting, audit, [i for (i,) in indexes])
    shown_first = query(server, shown)
    assert main(["load", "--release", SECOND, "--landing", str(landing)]) == 0
    shown_second = query(server, shown)
    current = query(server, "SELECT count(*) FROM cnpj_current.cnaes_secundarias")[0][0]
    second = sum(codes_of(server, SECOND).values())
    assert publish(landing, SECOND, keep_releases=1).success
    children = query(
        server,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'cnpj' "
        "AND tablename LIKE 'cnaes_secundarias%%' AND tablename <> 'cnaes_secundarias' "
        "ORDER BY 1",
    )
    dropped = query(
        server,
        "SELECT bool_and(dropped_at IS NOT NULL) FROM cnpj_audit.table_load "
        "WHERE table_name = 'cnaes_secundarias' AND release = %s",
        (FIRST,),
    )
    return Story(
        *first, dict(completo), shown_first, shown_second, current, second, children, dropped
    )


def quirky_records(landing: Path) -> list[tuple[int, list[str]]]:
    """The first good records of the first release's first file: those given the quirks."""
    oracle = read_table(landing, FIRST, "estabelecimentos")["Estabelecimentos0.zip"]
    return oracle.good[: len(QUIRKS)]


def expected_codes(landing: Path, release: str) -> Counter[tuple]:
    """The rule, written again from the files: split on commas, strip spaces, drop empty
    pieces, each distinct code of a record once."""
    expected: Counter[tuple] = Counter()
    for oracle in read_table(landing, release, "estabelecimentos").values():
        for _, record in oracle.good:
            pieces = [piece.strip(" ") for piece in record[SECONDARY].split(",")]
            for code in dict.fromkeys(piece for piece in pieces if piece):
                expected[(record[0], record[1], record[2], code)] += 1
    return expected


def test_rows_equal_the_codes_of_the_source_column(story: Story, landing: Path) -> None:
    assert story.first_rows == expected_codes(landing, FIRST)
    by_cnpj = Counter(key[:3] for key in story.first_rows.elements())
    counts = [by_cnpj[tuple(record[:3])] for _, record in quirky_records(landing)]
    assert counts == [0, 1, 5, 2, 2, 2]
    assert [record[SECONDARY] for _, record in quirky_records(landing)] == list(QUIRKS)
    assert {key[3] for key in story.first_rows} >= MALFORMED


def test_the_row_accounting_check_counted_during_the_read(story: Story, landing: Path) -> None:
    expected = expected_codes(landing, FIRST)
    result = story.first_accounting
    assert result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["mode"].value == "in-load counts"
    assert result.metadata["rows"].value == sum(expected.values())
    assert result.metadata["source_codes"].value == sum(expected.values())
    malformed = sum(n for key, n in expected.items() if key[3] in MALFORMED)
    assert result.metadata["malformed_codes"].value == malformed
    assert set(result.metadata["malformed_sample"].value) == MALFORMED


def test_a_missing_row_fails_the_check_but_never_the_publication(
    story: Story, server: ServerUrl
) -> None:
    latest = (
        "UPDATE cnpj_audit.table_load SET rows = rows + %s WHERE id = (SELECT max(id) FROM "
        "cnpj_audit.table_load WHERE table_name = 'cnaes_secundarias' AND release = %s)"
    )
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(latest, (-1, SECOND))
        try:
            broken = row_accounting(connection, SECOND)
            failures = release_failures(connection, SECOND, QualityConfig())
        finally:
            connection.execute(latest, (1, SECOND))
    assert not broken.passed
    assert f"{story.second_rows - 1} rows against {story.second_rows}" in (broken.description or "")
    assert failures == []


def test_a_build_that_miscounts_is_not_swapped_in(
    story: Story, server: ServerUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def losing_a_row(database_url: str, child: tables.LoadingChild, load: int) -> int:
        rows = fill(database_url, child, load)
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DELETE FROM {} WHERE ctid = (SELECT min(ctid) FROM {})").format(
                    child.identifier, child.identifier
                )
            )
        return rows - 1

    monkeypatch.setattr(cnaes_build, "fill", losing_a_row)
    before = codes_of(server, SECOND)
    run = RunInfo("cnpj/cnaes_secundarias", SECOND, "a-broken-build")
    with pytest.raises(cnaes_build.AccountingMismatch, match="not swapped in"):
        cnaes_build.build_cnaes_secundarias(server.url, SECOND, run, LockPolicy())
    assert codes_of(server, SECOND) == before
    loading = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cnaes_secundarias%%loading%%'"
    assert query(server, loading) == [(0,)]


def test_the_view_splits_the_column_until_the_child_is_built(
    story: Story, server: ServerUrl
) -> None:
    shown = (
        "SELECT release, cnpj_basico, cnpj_ordem, cnpj_dv, cnae FROM cnpj_current.cnaes_secundarias"
    )
    with psycopg.connect(server.url) as connection:
        built = Counter(connection.execute(shown).fetchall())
        plan = connection.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {shown}").fetchone()[0]
        connection.execute("DROP TABLE cnpj.cnaes_secundarias_2025_05")
        split = Counter(connection.execute(shown).fetchall())
        connection.rollback()
    assert sum(built.values()) == story.second_rows > 0
    assert split == built
    scans = list(_nodes(plan[0]["Plan"]))
    establishments = [n for n in scans if n.get("Relation Name", "").startswith("estabelecimentos")]
    assert establishments and all(n["Actual Loops"] == 0 for n in establishments)


def _nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_publication_does_not_wait_for_it_and_the_sensor_builds_it_after(
    story: Story, server: ServerUrl, landing: Path
) -> None:
    load_job = defs.resolve_job_def(load_release_job.name)
    assert ASSET_KEY not in load_job.asset_layer.executable_asset_keys
    assert ASSET_KEY in release_after_publication_job().asset_layer.executable_asset_keys
    instance = dg.DagsterInstance.get()

    def tick() -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs
        ) as context:
            return list(after_publication_sensor.evaluate_tick(context).run_requests or [])

    (request,) = tick()  # the story's last publication ran alone, as from the launchpad
    assert request.partition_key == SECOND
    assert build_after_publication(server, SECOND, landing) == 0  # as `cnpj-assets load` does
    assert tick() == []


def test_a_rows_lineage_reaches_its_establishments_zip_and_lines(
    story: Story, landing: Path
) -> None:
    line, _ = quirky_records(landing)[3]
    assert sorted(code for code, *_ in story.first_lineage) == ["6201501", "6202300"]
    for _, zip_name, first_line, last_line, table in story.first_lineage:
        assert (zip_name, table) == ("Estabelecimentos0.zip", "estabelecimentos")
        assert first_line <= line <= last_line


def test_it_has_its_audit_row_and_index(story: Story) -> None:
    ((rows, target),) = story.first_audit
    assert target == "cnpj.cnaes_secundarias_2025_04"
    assert rows == sum(story.first_rows.values())
    assert any("(cnpj_basico, cnpj_ordem, cnpj_dv)" in d for d in story.first_indexes)


def test_the_view_switches_with_the_publication_and_retention_drops_the_child(
    story: Story,
) -> None:
    assert story.shown_first == [(FIRST,)]
    assert story.shown_second == [(SECOND,)]
    assert story.current_rows == story.second_rows > 0
    assert story.children_after_retention == [("cnaes_secundarias_2025_05",)]
    assert story.first_dropped_in_audit == [(True,)]


def test_cnpj_completo_lists_them_in_order_with_their_descriptions(
    story: Story, landing: Path
) -> None:
    cnaes = {
        record[0]: record[1]
        for oracle in read_table(landing, FIRST, "cnaes").values()
        for _, record in oracle.good
    }
    expected = {}
    for _, record in quirky_records(landing):
        pieces = [piece.strip(" ") for piece in record[SECONDARY].split(",")]
        expected["".join(record[:3])] = [
            {"codigo": code, "descricao": cnaes.get(code)}
            for code in dict.fromkeys(p for p in pieces if p)
        ]
    assert story.first_completo == expected
    records = [record for _, record in quirky_records(landing)]
    assert expected["".join(records[0][:3])] == []
    assert [item["descricao"] for item in expected["".join(records[5][:3])]] == [None, None]
    assert any(item["descricao"] for items in expected.values() for item in items)
