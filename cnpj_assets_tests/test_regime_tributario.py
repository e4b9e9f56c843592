"""The regime_tributario folder: downloaded from the share, loaded with the monthly
tables' audit, published in cnpj_current and traced back to its zips and lines.

The module works in a database of its own and checks the loaded rows against an oracle
written here: the generated CSVs parsed with the csv module and normalised by hand.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cnpj_assets.defs.regime import (
    REGIME_CHECKS,
    SNAPSHOTS,
    evaluate_folder,
    regime_sensor,
    regime_tributario,
)
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.lineage import find_lineage, parse_cnpj
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.read.completo_view import ensure_view
from cnpj_assets.regime.share import download_snapshot, list_folder
from cnpj_assets.source.resource import ReceitaSourceResource
from cnpj_assets.source.settings import DownloadSettings
from cnpj_assets.synthetic import write_release
from cnpj_assets.synthetic.regime import write_regime_folder
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import database_of_its_own, materialize, query
from cnpj_assets_tests.webdav_server import PUBLISHED_AT, FakeShare

FIRST, VARIANT, BROKEN = "2025-01-14", "2025-02-03", "2024-06-30"
COMPANIES, ROWS = 400, 2_000
Row = tuple[int | None, str | None, str | None, str | None, str | None, int | None]


def oracle(folder: Path) -> Counter[Row]:
    """What the table must hold: every data line of every zip, normalised here by hand."""

    def cnpj(text: str) -> str | None:
        bare = text.replace(".", "").replace("/", "").replace("-", "").upper()
        return None if set(bare) <= {"0"} else bare.zfill(14)

    rows: Counter[Row] = Counter()
    for path in folder.glob("*.zip"):
        with zipfile.ZipFile(path) as archive:
            (member,) = archive.namelist()
            text = archive.read(member).decode("latin-1")
        for ano, full, scp, forma, count in list(csv.reader(io.StringIO(text)))[1:]:
            normal = cnpj(full)
            rows[
                (int(ano), normal, normal[:8] if normal else None, cnpj(scp), forma, int(count))
            ] += 1
    return rows


def loaded(server: ServerUrl, snapshot: str, table: str = "cnpj.regime_tributario") -> Counter[Row]:
    return Counter(
        query(
            server,
            "SELECT ano, cnpj, cnpj_basico, cnpj_da_scp, forma_de_tributacao, "
            f"quantidade_de_escrituracoes FROM {table} WHERE release = %s",  # noqa: S608
            (snapshot,),
        )
    )


def load(landing: Path, snapshot: str) -> dg.ExecuteInProcessResult:
    """Materialize the snapshot and its checks, as the load_regime_tributario job does."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SNAPSHOTS.name, [snapshot])
    return dg.materialize(
        [regime_tributario, REGIME_CHECKS],
        instance=instance,
        partition_key=snapshot,
        resources=build_resources(str(landing)),
        raise_on_error=False,
    )


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_regime") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("regime_landing")
    write_regime_folder(landing, FIRST, ROWS, COMPANIES, seed=5, split_presumido=2)
    return landing


@pytest.fixture(scope="module")
def first_load(server: ServerUrl, landing: Path) -> dg.ExecuteInProcessResult:
    result = load(landing, FIRST)
    assert result.success, result.all_events
    return result


def test_generated_folder_loads_value_for_value(
    server: ServerUrl, landing: Path, first_load: dg.ExecuteInProcessResult
) -> None:
    expected = oracle(landing / "regime_tributario" / FIRST)
    assert sum(expected.values()) == ROWS
    assert any(row[3] is not None for row in expected), "the generator wrote no SCP"
    assert loaded(server, FIRST) == expected
    assert checks_passed(first_load) == {
        "row_accounting": True,
        "reject_ratio": True,
        "cnpj_check_digits": True,
    }
    names = [r[0] for r in query(server, "SELECT DISTINCT zip_name FROM cnpj_audit.file_load")]
    assert "Lucro Presumido 1.zip" in names and "Lucro Presumido 2.zip" in names


def test_name_variant_and_header_case_load_and_become_current(
    server: ServerUrl, landing: Path, first_load: dg.ExecuteInProcessResult
) -> None:
    folder = write_regime_folder(
        landing, VARIANT, 900, COMPANIES, seed=5, split_presumido=3, upper_header=True
    ).folder
    (folder / "Lucro Real.zip").rename(folder / "LUCRO_REAL.zip")
    (folder / "Lucro Presumido 3.zip").rename(folder / "lucro presumido (3).zip")
    assert load(landing, VARIANT).success
    assert loaded(server, VARIANT) == oracle(folder)
    current = query(server, "SELECT DISTINCT release FROM cnpj_current.regime_tributario")
    assert current == [(VARIANT,)]
    assert load(landing, FIRST).success, "a reload of an older snapshot"
    current = query(server, "SELECT DISTINCT release FROM cnpj_current.regime_tributario")
    assert current == [(VARIANT,)], "an older snapshot moved cnpj_current backwards"


def test_malformed_line_is_quarantined_with_its_line_number(
    server: ServerUrl, landing: Path, first_load: dg.ExecuteInProcessResult
) -> None:
    folder = landing / "regime_tributario" / BROKEN
    shutil.copytree(landing / "regime_tributario" / FIRST, folder)
    zip_path = folder / "Lucro Arbitrado.zip"
    with zipfile.ZipFile(zip_path) as archive:
        (member,) = archive.namelist()
        lines = archive.read(member).decode("latin-1").splitlines(keepends=True)
    malformed = "2021,12.345.678/0001-95,0\n"  # two columns short
    lines.insert(2, malformed)  # line 3: after the header and one row
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, "".join(lines).encode("latin-1"))
    result = load(landing, BROKEN)
    assert result.success
    rejected = query(
        server,
        "SELECT r.line, r.raw FROM cnpj_audit.rejected_row r "
        "JOIN cnpj_audit.file_load f ON f.id = r.file_load_id "
        "JOIN cnpj_audit.table_load t ON t.id = f.table_load_id "
        "WHERE t.release = %s AND f.zip_name = %s",
        (BROKEN, zip_path.name),
    )
    assert rejected == [(3, malformed.strip())]
    assert checks_passed(result)["row_accounting"]
    assert loaded(server, BROKEN) == oracle(landing / "regime_tributario" / FIRST)


def test_lineage_from_a_cnpj_reaches_the_regime_rows_zip_and_lines(
    server: ServerUrl, landing: Path, first_load: dg.ExecuteInProcessResult
) -> None:
    (cnpj,) = query(
        server, "SELECT cnpj FROM cnpj.regime_tributario WHERE release = %s LIMIT 1", (FIRST,)
    )[0]
    with psycopg.connect(server.url) as connection:
        found = [
            row
            for row in find_lineage(connection, parse_cnpj(cnpj))
            if row.table == "regime_tributario" and row.release == FIRST
        ]
    expected = oracle(landing / "regime_tributario" / FIRST)
    assert len(found) == sum(n for row, n in expected.items() if row[1] == cnpj)
    punctuated = f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
    for row in found:
        with zipfile.ZipFile(landing / "regime_tributario" / FIRST / row.zip_name) as archive:
            lines = archive.read(row.member_name or "").decode("latin-1").splitlines()
        assert row.first_line is not None and row.last_line is not None
        span = lines[row.first_line - 1 : row.last_line]
        assert any(line.split(",")[1] == punctuated for line in span), (row, span[:3])


def test_sensor_starts_one_run_per_new_snapshot_and_the_client_downloads_it(
    landing: Path, tmp_path: Path
) -> None:
    source = landing / "regime_tributario" / FIRST
    share = FakeShare(
        {
            "2025-10": {},
            "Regime_Tributario": {
                **{p.name: p.read_bytes() for p in source.glob("*.zip")},
                "dicionario_de_dados.pdf.zip": b"not a regime",
            },
        },
        drop_once={"Lucro Real.zip"},
    ).start()
    try:
        receita = ReceitaSourceResource(share_url=share.share_url, legacy_url="")
        first = evaluate_folder(receita, set(), None)
        assert [r.partition_key for r in first.run_requests or []] == ["2025-10-09"]
        again = evaluate_folder(receita, set(), first.cursor)
        assert not again.run_requests
        assert again.skip_reason is not None
        assert "still snapshot 2025-10-09" in (again.skip_reason.skip_message or "")
        share.folder_modified["Regime_Tributario"] = PUBLISHED_AT + 100 * 86_400
        later = evaluate_folder(receita, set(), again.cursor)
        assert [r.partition_key for r in later.run_requests or []] == ["2026-01-17"]
        assert json.loads(later.cursor or "")["seen"] == ["2025-10-09", "2026-01-17"]
        assert not evaluate_folder(receita, {"2026-01-17"}, None).run_requests
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(SNAPSHOTS.name, ["2025-10-09"])
        ticked = regime_sensor(
            dg.build_sensor_context(instance=instance, resources={"receita": receita})
        )
        assert isinstance(ticked, dg.SensorResult)
        assert [r.run_key for r in ticked.run_requests or []] == ["regime:2026-01-17"]

        listing = list_folder(receita.client(), "regime_tributario")
        assert listing.snapshot == "2026-01-17"
        download_snapshot(receita.client(), listing, tmp_path, DownloadSettings(), lambda _: None)
        folder = tmp_path / "regime_tributario" / "2026-01-17"
        assert sorted(p.name for p in folder.glob("*.zip")) == sorted(
            p.name for p in source.glob("*.zip")
        )
        for path in source.glob("*.zip"):
            assert (folder / path.name).read_bytes() == path.read_bytes()
        assert [h.range for h in share.gets("Lucro Real.zip")][-1] is not None, "no resume"
    finally:
        share.stop()


def test_cnpj_completo_lists_the_establishments_regimes_by_year(
    server: ServerUrl, landing: Path, first_load: dg.ExecuteInProcessResult
) -> None:
    """A release of the same companies: each head office shows the newest snapshot's rows."""
    write_release(RELEASE, COMPANIES, landing, seed=5)
    assert materialize(landing, RELEASE).success
    with psycopg.connect(server.url, autocommit=True) as connection:
        ensure_view(connection)
        current = connection.execute(
            "SELECT DISTINCT release FROM cnpj_current.regime_tributario"
        ).fetchall()
    ((snapshot,),) = current
    expected: dict[str, list[dict]] = {}
    for (ano, cnpj, _, scp, forma, count), n in oracle(
        landing / "regime_tributario" / snapshot
    ).items():
        entry = {
            "ano": ano,
            "cnpj_da_scp": scp,
            "forma_de_tributacao": forma,
            "quantidade_de_escrituracoes": count,
        }
        expected.setdefault(cnpj or "", []).extend([entry] * n)
    found = dict(
        query(
            server,
            "SELECT cnpj, regime_tributario FROM cnpj.cnpj_completo WHERE release = %s",
            (RELEASE,),
        )
    )
    with_regimes = {cnpj: regimes for cnpj, regimes in found.items() if regimes}
    assert with_regimes, "no establishment got a regime"
    assert set(with_regimes) <= set(expected)
    for cnpj, regimes in with_regimes.items():
        key = lambda r: (  # noqa: E731
            r["ano"],
            r["cnpj_da_scp"] or "",
            r["forma_de_tributacao"],
            r["quantidade_de_escrituracoes"],
        )
        assert regimes == sorted(expected[cnpj], key=key), cnpj
    assert all(regimes == [] for cnpj, regimes in found.items() if cnpj not in expected)


def test_cnpj_spellings_are_normalised_and_invalid_ones_counted(
    server: ServerUrl, tmp_path: Path
) -> None:
    """Punctuated or bare, alphanumeric, zeros dropped by a spreadsheet: 14 characters; a
    value that cannot be a CNPJ is NULL and counted, a `0` SCP is NULL and not counted."""
    snapshot = "2023-12-01"
    lines = {
        '2022,"12.ABC.345/01DE-35",0,LUCRO REAL,1': (2022, "12ABC34501DE35", None),
        "2022,191,00.000.000/0000-00,LUCRO REAL,1": (2022, "00000000000191", None),
        "2021,12abc34501de35,11.222.333/0001-81,LUCRO REAL,2": (
            2021,
            "12ABC34501DE35",
            "11222333000181",
        ),
        "2020,12.345.678/0001-9X,0,LUCRO REAL,1": (2020, None, None),
        "dois mil,11222333000181,0,LUCRO REAL,x": (None, "11222333000181", None),
    }
    folder = tmp_path / "regime_tributario" / snapshot
    folder.mkdir(parents=True)
    header = "Ano,CNPJ,Cnpj_Da_Scp,Forma_de_Tributacao,Quantidade_de_Escrituracoes\n"
    for name in ("Imunes e Isentas", "Lucro Arbitrado", "Lucro Presumido"):
        with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
            archive.writestr(f"{name}.csv", header)
    with zipfile.ZipFile(folder / "Lucro Real.zip", "w") as archive:
        archive.writestr("Lucro Real.csv", header + "\n".join(lines) + "\n")
    assert load(tmp_path, snapshot).success
    rows = query(
        server,
        "SELECT ano, cnpj, cnpj_da_scp FROM cnpj.regime_tributario WHERE release = %s",
        (snapshot,),
    )
    assert Counter(rows) == Counter(lines.values())
    ((invalid,),) = query(
        server,
        "SELECT f.invalid_values FROM cnpj_audit.file_load f "
        "JOIN cnpj_audit.table_load t ON t.id = f.table_load_id "
        "WHERE t.release = %s AND f.zip_name = 'Lucro Real.zip' ORDER BY f.id DESC LIMIT 1",
        (snapshot,),
    )
    assert invalid == {
        "ano": 1,
        "cnpj": 1,
        "cnpj_da_scp": 0,
        "quantidade_de_escrituracoes": 1,
    }
