"""The checks in both modes on a release with known defects: each fails on its defect.

The release job's checks read what the load counted (in-load mode); a check re-run on
a loaded release scans PostgreSQL (deep mode). Both must fail on the same defects with
the same numbers as an independent reading of the zips (the csv oracle), and the deep
mode must catch what only the data can show: rows the audit vouches for that are gone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cnpj_assets.cnpj_number import is_valid
from cnpj_assets.defs.checks import CheckMode, QualityConfig, evaluate
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.quality.rules import (
    CNPJ_CHECK_DIGITS,
    KEY_UNIQUENESS,
    REFERENTIAL_INTEGRITY,
    ROW_ACCOUNTING,
    check_names,
)
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import Records, materialize, rewrite_member
from cnpj_assets_tests.oracle import read_table
from cnpj_assets_tests.test_checks import drop_release, materialize_with_checks

DEFECTIVE = "2026-07"
NEIGHBOUR = "2026-06"
ORPHAN_COLUMNS = ("motivo_situacao_cadastral", "municipio", "pais")


def _wrong_digits(cnpj: str) -> str:
    return cnpj[:12] + f"{(int(cnpj[12:]) + 1) % 100:02d}"


def _break_establishments(records: Records) -> Records:
    """Wrong check digits on five establishments, an alphanumeric one among them."""
    alphanumeric = next(i for i, r in enumerate(records) if not r[0].isdigit())
    for index in {0, 1, 2, 3, alphanumeric}:
        records[index][2] = _wrong_digits("".join(records[index][:3]))[12:]
    return records


def _break_partners(records: Records) -> Records:
    """Wrong check digits on three partners that are companies."""
    companies = [r for r in records if r[1] == "1"][:3]
    assert len(companies) == 3
    for record in companies:
        record[3] = _wrong_digits(record[3])
    return records


@pytest.fixture(scope="module")
def defective_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean release, then: wrong check digits, a repeated Simples company. The
    generator's own orphan codes and companies stay."""
    landing = tmp_path_factory.mktemp("defective_landing")
    write_release(release=DEFECTIVE, rows=2000, out_dir=landing, seed=23, quirks=False)
    folder = landing / DEFECTIVE
    rewrite_member(folder / "Estabelecimentos3.zip", _break_establishments)
    rewrite_member(folder / "Socios1.zip", _break_partners)
    rewrite_member(folder / "Simples.zip", lambda records: [*records, records[5]])
    return landing


@pytest.fixture(scope="module")
def neighbour_knows_the_orphans(
    postgres_server: ServerUrl, defective_landing: Path
) -> Iterator[None]:
    """Another release, loaded first, whose lookups hold every code the defective one's
    establishments use: a check reading its lookups instead of its own release's would
    find no orphan."""
    spec = TABLES["estabelecimentos"]
    shutil.copytree(defective_landing / DEFECTIVE, defective_landing / NEIGHBOUR)
    lookups = []
    for column in ORPHAN_COLUMNS:
        position = spec.column_names.index(column)
        used = {r[position] for _, _, r in _good(defective_landing, "estabelecimentos")} - {""}
        lookup = TABLES[spec.column(column).references or ""]
        (zip_name,) = lookup.zip_names()
        rewrite_member(
            defective_landing / NEIGHBOUR / zip_name,
            lambda records, used=used: [
                *records,
                *([code, "CODIGO DO TESTE"] for code in sorted(used - {r[0] for r in records})),
            ],
        )
        lookups.append(lookup.name)
    assert materialize(defective_landing, NEIGHBOUR, lookups).success
    yield
    drop_release(postgres_server, NEIGHBOUR)


@pytest.fixture(scope="module")
def loaded(
    postgres_server: ServerUrl, defective_landing: Path, neighbour_knows_the_orphans: None
) -> Iterator[dg.ExecuteInProcessResult]:
    result = materialize_with_checks(defective_landing, DEFECTIVE)
    assert result.success
    yield result
    drop_release(postgres_server, DEFECTIVE)


@pytest.fixture(scope="module")
def in_load(loaded) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """The job's own check results: the run that loaded the tables reads their counts."""
    return {(e.asset_key.path[-1], e.check_name): e for e in loaded.get_asset_check_evaluations()}


def deep_results(
    server: ServerUrl, table: str, names: list[str] | None = None
) -> dict[str, dg.AssetCheckResult]:
    spec = TABLES[table]
    with psycopg.connect(server.url) as connection:
        results = evaluate(
            connection,
            spec,
            DEFECTIVE,
            names or check_names(spec),
            QualityConfig(mode=CheckMode.DEEP),
        )
    return {r.check_name: r for r in results}


def _comparable(metadata: dict) -> dict:
    return {
        k: getattr(v, "value", v) for k, v in metadata.items() if k not in ("mode", "first_lines")
    }


def _good(landing: Path, table: str) -> list[tuple[str, int, list[str]]]:
    return [
        (zip_name, line, record)
        for zip_name, f in read_table(landing, DEFECTIVE, table).items()
        for line, record in f.good
    ]


def test_the_job_reads_the_loads_counts(in_load) -> None:
    for (table, name), evaluation in in_load.items():
        mode = evaluation.metadata["mode"].value
        if (
            name == REFERENTIAL_INTEGRITY
            and "cnpj_basico"
            in {c.name for c in TABLES[table].columns if c.references == "empresas"}
            and table != "empresas"
        ):
            assert "one anti-join" in mode, (table, name)
        else:
            assert mode == "in-load counts", (table, name)


@pytest.mark.parametrize("table", ["empresas", "estabelecimentos", "socios", "simples"])
def test_deep_mode_agrees_with_the_in_load_counts(
    in_load, postgres_server: ServerUrl, table: str
) -> None:
    for name, result in deep_results(postgres_server, table).items():
        assert result.metadata["mode"].value == "deep (PostgreSQL scanned)"
        counted = in_load[(table, name)]
        assert (result.passed, result.severity) == (counted.passed, counted.severity), name
        assert _comparable(result.metadata) == _comparable(counted.metadata), (table, name)


@pytest.mark.parametrize("table", ["estabelecimentos", "socios"])
def test_wrong_check_digits_fail_in_both_modes_as_the_oracle_counts(
    in_load, postgres_server: ServerUrl, defective_landing: Path, table: str
) -> None:
    source = TABLES[table].full_cnpj
    assert source is not None
    names = TABLES[table].column_names
    cnpjs = [
        (zip_name, line, "".join(record[names.index(c)] for c in source.columns))
        for zip_name, line, record in _good(defective_landing, table)
        if source.only_when is None or record[names.index(source.only_when[0])] == "1"
    ]
    invalid = [c for c in cnpjs if not is_valid(c[2])]
    assert len(invalid) >= 3
    deep = deep_results(postgres_server, table, [CNPJ_CHECK_DIGITS])[CNPJ_CHECK_DIGITS]
    for result in (in_load[(table, CNPJ_CHECK_DIGITS)], deep):
        assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
        assert result.metadata["cnpjs"].value == len(cnpjs)
        assert result.metadata["invalid_cnpjs"].value == len(invalid)
        assert result.metadata["sample"].value == sorted({c[2] for c in invalid})[:10]
    first_lines = in_load[(table, CNPJ_CHECK_DIGITS)].metadata["first_lines"].value
    where = {c[2]: (c[0], c[1]) for c in reversed(invalid)}  # the first line of each value
    assert [(s["zip_name"], s["line"]) for s in first_lines] == [
        where[s["value"]] for s in first_lines
    ]


def test_orphan_codes_warn_in_both_modes(
    in_load, postgres_server: ServerUrl, defective_landing: Path
) -> None:
    deep = deep_results(postgres_server, "estabelecimentos", [REFERENTIAL_INTEGRITY])
    for result in (
        in_load[("estabelecimentos", REFERENTIAL_INTEGRITY)],
        deep[REFERENTIAL_INTEGRITY],
    ):
        assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
        for column in ("cnpj_basico", "motivo_situacao_cadastral", "municipio", "pais"):
            assert result.metadata[f"{column}_orphan_rows"].value > 0, column
    spec = TABLES["estabelecimentos"]
    first_lines = in_load[("estabelecimentos", REFERENTIAL_INTEGRITY)].metadata["first_lines"].value
    assert "cnpj_basico" not in first_lines  # not counted in the load: one anti-join after it
    for column in ORPHAN_COLUMNS:
        known = {
            r[0]
            for _, _, r in _good(
                defective_landing, TABLES[spec.column(column).references or ""].name
            )
        }
        position = spec.column_names.index(column)
        where: dict[str, list] = {}
        for zip_name, line, record in _good(defective_landing, "estabelecimentos"):
            code = record[position]
            if code and code not in known:
                where.setdefault(code, [0, zip_name, line])[0] += 1
        assert first_lines[column] == [
            {"value": code, "rows": rows, "zip_name": zip_name, "line": line}
            for code, (rows, zip_name, line) in sorted(where.items())[:10]
        ], column


def test_a_repeated_key_warns_in_both_modes(in_load, postgres_server: ServerUrl) -> None:
    deep = deep_results(postgres_server, "simples", [KEY_UNIQUENESS])[KEY_UNIQUENESS]
    for result in (in_load[("simples", KEY_UNIQUENESS)], deep):
        assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
        assert result.metadata["duplicate_keys"].value == 1
        assert result.metadata["extra_rows"].value == 1
        assert result.metadata["sample"].value[0]["rows"] == 2


def test_row_accounting_fails_in_both_modes(loaded, postgres_server: ServerUrl) -> None:
    """In-load, a file whose lines do not add up fails; deep, a file whose rows are
    missing from PostgreSQL fails although the audit adds up."""
    spec = TABLES["estabelecimentos"]
    with psycopg.connect(postgres_server.url) as connection:
        connection.execute(
            "UPDATE cnpj_audit.file_load SET lines = lines + 3 WHERE zip_name = 'Estabelecimentos4.zip' "
            "AND table_load_id = (SELECT max(id) FROM cnpj_audit.table_load "
            "WHERE table_name = 'estabelecimentos' AND release = %s AND status = 'COMPLETED')",
            (DEFECTIVE,),
        )
        (counted,) = evaluate(
            connection,
            spec,
            DEFECTIVE,
            [ROW_ACCOUNTING],
            QualityConfig(mode=CheckMode.IN_LOAD),
        )
        connection.rollback()
        deleted = connection.execute(
            "DELETE FROM cnpj.estabelecimentos e USING cnpj_audit.lineage l "
            "WHERE e.release = %s AND l.subbatch_id = e._subbatch_id "
            "AND l.zip_name = 'Estabelecimentos2.zip' AND e.cnpj_ordem = '0001'",
            (DEFECTIVE,),
        ).rowcount
        (scanned,) = evaluate(
            connection, spec, DEFECTIVE, [ROW_ACCOUNTING], QualityConfig(mode=CheckMode.DEEP)
        )
        (trusting,) = evaluate(
            connection, spec, DEFECTIVE, [ROW_ACCOUNTING], QualityConfig(mode=CheckMode.IN_LOAD)
        )
        connection.rollback()
    assert deleted > 0
    assert not counted.passed and counted.severity == dg.AssetCheckSeverity.ERROR
    assert "Estabelecimentos4.zip" in (counted.description or "")
    assert not scanned.passed and scanned.severity == dg.AssetCheckSeverity.ERROR
    assert scanned.description == "1 of 10 files do not add up: Estabelecimentos2.zip"
    assert trusting.passed  # the audit alone cannot see rows removed after the load


def test_a_check_rerun_on_a_loaded_release_goes_deep(
    loaded, postgres_server: ServerUrl, defective_landing: Path
) -> None:
    spec = TABLES["empresas"]
    with psycopg.connect(postgres_server.url) as connection:
        results = evaluate(
            connection, spec, DEFECTIVE, check_names(spec), QualityConfig(), "another-run-id"
        )
        same_run = evaluate(
            connection, spec, DEFECTIVE, check_names(spec), QualityConfig(), loaded.run_id
        )
    assert {r.metadata["mode"].value for r in results} == {"deep (PostgreSQL scanned)"}
    assert {r.metadata["mode"].value for r in same_run} == {"in-load counts"}
