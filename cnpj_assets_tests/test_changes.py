"""`cnpj/changes` and `cnpj-assets history` against the generator's record of a month.

Two releases: one generated, the next evolved from it with known changes (and, by the
test, one more partner for a company whose establishment moved). Both load through
`cnpj-assets load`; the changes the asset finds must be the generator's, kind by kind
and row by row, however often either release is loaded again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cnpj_assets.cli import main
from cnpj_assets.defs.changes import change_rates, changes
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.synthetic import write_release
from cnpj_assets.synthetic.evolve import MonthlyRates, evolve_release
from cnpj_assets_tests.helpers import database_of_its_own, rewrite_member

BEFORE, AFTER, LATER = "2024-08", "2024-09", "2024-10"
RATES = replace(MonthlyRates().scaled(6), partners_out=MonthlyRates().partners_in * 3)
Key = tuple[str, str, str, tuple[str, ...]]


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_changes") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("changes_landing")
    write_release(release=BEFORE, rows=3000, out_dir=landing, seed=51)
    evolve_release(landing / BEFORE, AFTER, landing, seed=52, rates=RATES)
    return landing


def join_partner(landing: Path, release: str, cnpj: str, name: str, cpf: str) -> None:
    """One more partner of the company, written into the release and its changes.json."""

    def add_partner(rows: list[list[str]]) -> list[list[str]]:
        partner = list(rows[0])
        partner[0], partner[1], partner[2], partner[3] = cnpj[:8], "2", name, cpf
        return [*rows, partner]

    rewrite_member(landing / release / "Socios9.zip", add_partner)
    record = json.loads((landing / release / "changes.json").read_text())
    record["changes"].append(
        {"table": "socios", "cnpj": cnpj[:8], "kind": "partner_in", "columns": []}
    )
    (landing / release / "changes.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def moved_and_joined(landing: Path) -> str:
    """An establishment that moved, whose company also gains a partner (written here),
    and one more in the month after (LATER, evolved from AFTER), so its history spans
    three releases."""
    record = json.loads((landing / AFTER / "changes.json").read_text())
    cnpj = next(c["cnpj"] for c in record["changes"] if c["kind"] == "moved")
    join_partner(landing, AFTER, cnpj, "SOCIA ACRESCENTADA PELO TESTE", "***424242**")
    evolve_release(landing / AFTER, LATER, landing, seed=53, rates=RATES)
    join_partner(landing, LATER, cnpj, "SEGUNDA SOCIA DO TESTE", "***434343**")
    return cnpj


@pytest.fixture(scope="module")
def loaded(server: ServerUrl, landing: Path, moved_and_joined: str) -> None:
    for release in (BEFORE, AFTER, LATER):
        assert main(["load", "--release", release, "--landing", str(landing)]) == 0


def expected(landing: Path) -> Counter[Key]:
    record = json.loads((landing / AFTER / "changes.json").read_text())
    return Counter(
        (c["table"], c["cnpj"], c["kind"], tuple(sorted(c["columns"]))) for c in record["changes"]
    )


def found(server: ServerUrl, release: str = AFTER) -> Counter[Key]:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute(
            "SELECT table_name, cnpj, kind, changed_columns FROM cnpj.changes WHERE release = %s",
            (release,),
        ).fetchall()
    return Counter((t, c, k, tuple(sorted(cols))) for t, c, k, cols in rows)


def rebuild(landing: Path, release: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [changes],
        instance=dg.DagsterInstance.get(),
        partition_key=release,
        resources=build_resources(str(landing)),
    )
    assert result.success
    return result


def test_the_changes_are_the_generators_kind_by_kind_and_row_by_row(
    loaded, server: ServerUrl, landing: Path
) -> None:
    truth = expected(landing)
    kinds = {key[2] for key in truth}
    assert {"opened", "gone", "status_changed", "moved", "activity_changed"} <= kinds
    assert {"partner_in", "partner_out", "renamed", "capital_changed", "simples_out"} <= kinds
    assert found(server) == truth
    assert found(server, BEFORE) == Counter()  # nothing loaded before it


def test_old_and_new_values_hold_the_changed_columns_and_lineage_the_new_row(
    loaded, server: ServerUrl
) -> None:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute(
            "SELECT c.kind, c.changed_columns, c.old_values, c.new_values, l.zip_name "
            "FROM cnpj.changes c LEFT JOIN cnpj_audit.lineage l ON l.subbatch_id = c._subbatch_id "
            "WHERE c.release = %s",
            (AFTER,),
        ).fetchall()
    for kind, columns, old, new, zip_name in rows:
        if kind in ("opened", "partner_in"):
            assert old is None and new and zip_name
        elif kind in ("gone", "partner_out"):
            assert new is None and old and zip_name is None
        else:
            assert set(old) == set(new) == set(columns) and zip_name
            assert all(old[c] != new[c] for c in columns)


def test_loading_either_release_again_gives_the_same_changes(
    loaded, server: ServerUrl, landing: Path
) -> None:
    truth = expected(landing)
    assert main(["load", "--release", AFTER, "--landing", str(landing)]) == 0
    assert found(server) == truth
    assert main(["load", "--release", BEFORE, "--landing", str(landing)]) == 0  # kept as is
    rebuilt = rebuild(landing, AFTER)
    assert found(server) == truth
    metadata = rebuilt.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["previous_release"].value == BEFORE
    assert metadata["estabelecimentos.opened"].value == sum(
        n for key, n in truth.items() if key[0] == "estabelecimentos" and key[2] == "opened"
    )
    assert "| municipio |" in metadata["top_municipalities"].value
    (check,) = rebuilt.get_asset_check_evaluations()
    assert check.passed


def test_implausible_rates_warn(loaded, server: ServerUrl) -> None:
    with psycopg.connect(server.url) as connection:
        result = change_rates(connection, AFTER, max_share=0.005)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "estabelecimentos.opened" in (result.description or "")


def test_history_shows_a_move_and_a_new_partner_with_their_lineage(
    loaded, moved_and_joined: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["history", moved_and_joined]) == 0
    text = capsys.readouterr().out
    assert BEFORE in text and AFTER in text
    assert f"estabelecimentos {moved_and_joined} moved: logradouro" in text
    assert f"socios {moved_and_joined[:8]} partner_in" in text
    assert "SOCIA ACRESCENTADA PELO TESTE" in text
    assert "from Socios9.zip lines" in text and "/runs/" in text
    assert main(["history", moved_and_joined, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [s["release"] for s in document["snapshots"]] == [BEFORE, AFTER, LATER]
    assert {c["kind"] for c in document["changes"]} >= {"moved", "partner_in"}
    in_order = [(c["release"], c["previous_release"]) for c in document["changes"]]
    assert in_order == sorted(in_order) and {AFTER, LATER} <= {r for r, _ in in_order}
    assert ("SEGUNDA SOCIA DO TESTE" in text) and text.index(AFTER) < text.index(LATER)


def test_history_refuses_an_invalid_cnpj_and_answers_1_for_an_unknown_one(
    loaded, capsys: pytest.CaptureFixture
) -> None:
    assert main(["history", "12.345.678/0001-00"]) == 2
    assert "wrong check digits" in capsys.readouterr().err
    assert main(["history", "11.222.333/0001-81"]) == 1
    assert "in no loaded release" in capsys.readouterr().err
