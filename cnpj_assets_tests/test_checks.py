"""The data quality checks: pass on a clean release, fail or warn with the right counts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from cnpj_assets.audit.queries import latest_completed_load
from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS
from cnpj_assets.defs.checks import TABLE_CHECKS, QualityConfig, evaluate
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.postgres.tables import SCHEMA, child_name
from cnpj_assets.quality.deep import cnpj_validity_query
from cnpj_assets.quality.rules import (
    CNPJ_CHECK_DIGITS,
    KEY_UNIQUENESS,
    REFERENTIAL_INTEGRITY,
    REJECT_RATIO,
    ROW_ACCOUNTING,
    check_names,
)
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import ReleaseReport, write_release
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import materialize, query
from cnpj_assets_tests.oracle import read_table

CLEAN = "2026-09"


def materialize_with_checks(landing: Path, release: str) -> dg.ExecuteInProcessResult:
    """The ten tables and their checks in one run, as the load_release job runs them."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(RELEASES.name, [release])
    return dg.materialize(
        [*TABLE_ASSETS, *TABLE_CHECKS],
        instance=instance,
        partition_key=release,
        resources=build_resources(str(landing)),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def clean_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("clean_landing")
    write_release(release=CLEAN, rows=2000, out_dir=landing, seed=11, quirks=False)
    return landing


def drop_release(server: ServerUrl, release: str) -> None:
    """Drop a release's children, attached or left by a failed load, so other modules see
    only the releases they load."""
    with psycopg.connect(server.url, autocommit=True) as connection:
        for spec in TABLES.values():
            prefix = child_name(spec, release)
            names = connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                "AND (tablename = %s OR starts_with(tablename, %s))",
                (SCHEMA, prefix, f"{prefix}_load"),
            ).fetchall()
            for (name,) in names:
                connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, name)))


@pytest.fixture(scope="module")
def clean_run(
    postgres_server: ServerUrl, clean_landing: Path
) -> Iterator[dg.ExecuteInProcessResult]:
    result = materialize_with_checks(clean_landing, CLEAN)
    assert result.success
    yield result
    drop_release(postgres_server, CLEAN)


@pytest.fixture(scope="module")
def evaluations(
    clean_run: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.path[-1], e.check_name): e for e in clean_run.get_asset_check_evaluations()
    }


@pytest.fixture(scope="module")
def quirks_loaded(postgres_server: ServerUrl, quirks_landing: Path) -> None:
    assert materialize(quirks_landing, RELEASE, ["empresas", "socios"]).success


def run_checks(
    server: ServerUrl, table: str, release: str, name: str, **config: float
) -> dg.AssetCheckResult:
    with psycopg.connect(server.url) as connection:
        (result,) = evaluate(connection, TABLES[table], release, [name], QualityConfig(**config))
    return result


def test_every_table_gets_its_checks_per_partition(evaluations) -> None:
    expected = {(table, name) for table, spec in TABLES.items() for name in check_names(spec)}
    assert set(evaluations) == expected
    assert all(e.partition == CLEAN for e in evaluations.values())
    assert ("socios", KEY_UNIQUENESS) not in evaluations  # socios has no key
    assert ("estabelecimentos", CNPJ_CHECK_DIGITS) in evaluations
    assert ("socios", CNPJ_CHECK_DIGITS) in evaluations  # partners that are companies
    assert ("cnaes", REFERENTIAL_INTEGRITY) not in evaluations  # lookups reference nothing


def test_a_clean_release_passes_all_but_its_orphans(evaluations) -> None:
    failed = {key for key, e in evaluations.items() if not e.passed}
    # the generator's orphans: establishments' codes and companies, foreign partners' countries
    assert failed == {
        ("estabelecimentos", REFERENTIAL_INTEGRITY),
        ("socios", REFERENTIAL_INTEGRITY),
    }
    assert all(evaluations[key].severity == dg.AssetCheckSeverity.WARN for key in failed)


def test_row_accounting_passes_with_every_file(evaluations) -> None:
    for table in TABLES:
        evaluation = evaluations[(table, ROW_ACCOUNTING)]
        assert evaluation.passed
        assert evaluation.metadata["files"].value == TABLES[table].file_count
        assert evaluation.metadata["unbalanced_files"].value == 0


def _oracle_codes(landing: Path, release: str, table: str) -> set[str]:
    return {record[0] for f in read_table(landing, release, table).values() for _, record in f.good}


def test_orphans_match_the_generators(evaluations, clean_landing: Path) -> None:
    report = ReleaseReport.load(clean_landing / CLEAN)
    for table in ("empresas", "estabelecimentos", "socios", "simples"):
        spec = TABLES[table]
        records = [r for f in read_table(clean_landing, CLEAN, table).values() for _, r in f.good]
        orphans = evaluations[(table, REFERENTIAL_INTEGRITY)].metadata["orphans"].value
        for column in (c for c in spec.columns if c.references and c.references != table):
            known = _oracle_codes(clean_landing, CLEAN, column.references)
            position = spec.column_names.index(column.name)
            missing = [r[position] for r in records if r[position] and r[position] not in known]
            found = orphans[column.name]
            assert (found["rows"], found["codes"]) == (len(missing), len(set(missing))), column
            assert found["sample"] == sorted(set(missing))[:10]
            if column.references == "empresas":  # only establishments have orphan companies
                assert set(missing) == (
                    set(report.orphan_cnpj_basicos) if table == "estabelecimentos" else set()
                )
            else:
                assert set(missing) <= set(report.orphan_codes.get(column.references, ()))
    estabelecimentos = evaluations[("estabelecimentos", REFERENTIAL_INTEGRITY)].metadata
    for column in ("cnpj_basico", "motivo_situacao_cadastral", "municipio", "pais"):
        assert estabelecimentos[f"{column}_orphan_rows"].value > 0


def test_key_uniqueness_warns_on_the_duplicate_company(
    quirks_loaded, postgres_server: ServerUrl, quirks_report: dict
) -> None:
    result = run_checks(postgres_server, "empresas", RELEASE, KEY_UNIQUENESS)
    duplicate = next(q for q in quirks_report["quirks"] if q["kind"] == "duplicate_row")
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["duplicate_keys"].value == 1
    assert result.metadata["extra_rows"].value == 1
    assert result.metadata["sample"].value == [{"cnpj_basico": duplicate["cnpj_basico"], "rows": 2}]
    rows = query(
        postgres_server,
        "SELECT count(*) FROM cnpj.empresas WHERE release = %s AND cnpj_basico = %s",
        (RELEASE, duplicate["cnpj_basico"]),
    )[0][0]
    assert rows == 2  # reported, not dropped


def test_reject_ratio_against_its_ceiling(
    quirks_loaded, postgres_server: ServerUrl, quirks_landing: Path
) -> None:
    oracle = read_table(quirks_landing, RELEASE, "socios")
    good, bad = sum(len(f.good) for f in oracle.values()), sum(len(f.bad) for f in oracle.values())
    ratio = bad / (good + bad)
    assert bad == 1 and ratio < 0.001
    within = run_checks(postgres_server, "socios", RELEASE, REJECT_RATIO)
    assert within.passed
    assert within.metadata["reject_ratio"].value == pytest.approx(ratio)
    above = run_checks(postgres_server, "socios", RELEASE, REJECT_RATIO, max_reject_ratio=ratio / 2)
    assert not above.passed
    assert above.severity == dg.AssetCheckSeverity.ERROR
    assert above.metadata["rejects"].value == 1
    assert above.metadata["records"].value == good + bad


def test_row_accounting_fails_on_a_file_that_does_not_add_up(
    clean_run, postgres_server: ServerUrl
) -> None:
    spec = TABLES["estabelecimentos"]
    with psycopg.connect(postgres_server.url) as connection:
        load = latest_completed_load(connection, spec.name, CLEAN)
        assert load is not None
        load_id = load.id
        connection.execute(
            "UPDATE cnpj_audit.file_load SET lines = lines + 3 "
            "WHERE table_load_id = %s AND zip_name = 'Estabelecimentos4.zip'",
            (load_id,),
        )
        (result,) = evaluate(connection, spec, CLEAN, [ROW_ACCOUNTING], QualityConfig())
        connection.rollback()
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["unbalanced_files"].value == 1
    assert "Estabelecimentos4.zip" in (result.description or "")


def test_wrong_check_digits_are_counted(clean_run, postgres_server: ServerUrl) -> None:
    spec = TABLES["estabelecimentos"]
    with psycopg.connect(postgres_server.url) as connection:
        total = connection.execute(
            "SELECT count(*) FROM cnpj.estabelecimentos WHERE release = %s", (CLEAN,)
        ).fetchone()[0]
        broken = connection.execute(
            """UPDATE cnpj.estabelecimentos SET cnpj_dv = lpad(((cnpj_dv::int + 1) %% 100)::text, 2, '0')
               WHERE release = %s AND (cnpj_basico ~ '[A-Z]' OR cnpj_basico LIKE '1%%')
               RETURNING cnpj_basico || cnpj_ordem || cnpj_dv""",
            (CLEAN,),
        ).fetchall()
        (result,) = evaluate(connection, spec, CLEAN, [CNPJ_CHECK_DIGITS], QualityConfig())
        connection.rollback()
    assert any(any(c.isalpha() for c in cnpj[:8]) for (cnpj,) in broken)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["cnpjs"].value == total
    assert result.metadata["invalid_cnpjs"].value == len(broken)
    assert result.metadata["invalid_share"].value == pytest.approx(len(broken) / total)
    assert result.metadata["sample"].value == sorted(c for (c,) in broken)[:10]


def test_clean_check_digits_include_alphanumeric_cnpjs(
    evaluations, postgres_server: ServerUrl
) -> None:
    alphanumeric = query(
        postgres_server,
        "SELECT count(*) FROM cnpj.estabelecimentos WHERE release = %s AND cnpj_basico ~ '[A-Z]'",
        (CLEAN,),
    )[0][0]
    assert alphanumeric > 0
    evaluation = evaluations[("estabelecimentos", CNPJ_CHECK_DIGITS)]
    assert evaluation.passed and evaluation.metadata["invalid_cnpjs"].value == 0


def test_check_digits_in_sql_agree_with_python(postgres_server: ServerUrl) -> None:
    rng = random.Random(5)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    bodies = ["".join(rng.choice(alphabet) for _ in range(12)) for _ in range(500)]
    valid = [body + check_digits(body) for body in bodies]
    wrong = [body + f"{(int(check_digits(body)) + 7) % 100:02d}" for body in bodies[:50]]
    malformed = ["12ABC34501DEX5", "1234", None, "12abc34501de35"]
    source = sql.SQL("SELECT unnest(%s::text[]) AS cnpj")
    with psycopg.connect(postgres_server.url) as connection:
        rows = connection.execute(
            cnpj_validity_query(source), (valid + wrong + malformed,)
        ).fetchall()
    verdicts = [is_valid for _, is_valid in rows]
    assert verdicts == [True] * len(valid) + [False] * (len(wrong) + len(malformed))


def test_checks_without_a_load_fail_clearly(postgres_server: ServerUrl) -> None:
    result = run_checks(postgres_server, "cnaes", "1999-01", ROW_ACCOUNTING)
    assert not result.passed
    assert result.description == "no completed load of cnaes for release 1999-01"
