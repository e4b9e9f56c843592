"""`cnpj/cnpj_completo`: one row per establishment that agrees with the source files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from cnpj_assets.defs.assets import RELEASES
from cnpj_assets.defs.completo import cnpj_completo
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.read.completo_view import COLUMNS
from cnpj_assets.specs import TABLES
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import count_rows, materialize, query
from cnpj_assets_tests.oracle import read_table


def build(landing: Path, materialize: bool = False) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    return dg.materialize(
        [cnpj_completo],
        instance=instance,
        partition_key=RELEASE,
        resources=build_resources(str(landing)),
        run_config={"ops": {"cnpj__cnpj_completo": {"config": {"materialize": materialize}}}},
    )


@pytest.fixture(scope="module")
def built(postgres_server: ServerUrl, quirks_landing: Path) -> dg.ExecuteInProcessResult:
    assert materialize(quirks_landing, RELEASE).success
    result = build(quirks_landing)
    assert result.success
    return result


@pytest.fixture(scope="module")
def rows(built, postgres_server: ServerUrl) -> dict[str, list[dict]]:
    with (
        psycopg.connect(postgres_server.url) as connection,
        connection.cursor(row_factory=dict_row) as cursor,
    ):
        records = cursor.execute(
            "SELECT * FROM cnpj.cnpj_completo WHERE release = %s", (RELEASE,)
        ).fetchall()
    by_cnpj: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_cnpj[record["cnpj"]].append(record)
    return by_cnpj


def _good(landing: Path, table: str) -> list[list[str]]:
    return [record for f in read_table(landing, RELEASE, table).values() for _, record in f.good]


def _lookup(landing: Path, table: str) -> dict[str, str]:
    return dict((r[0], r[1]) for r in _good(landing, table))


def _or_none(value: str | None) -> str | None:
    return value or None


def test_one_row_per_establishment(built, rows, postgres_server: ServerUrl) -> None:
    assert sum(len(r) for r in rows.values()) == count_rows(postgres_server, "estabelecimentos")
    assert all(len(r) == 1 for r in rows.values())  # the repeated company does not fan out
    metadata = built.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == count_rows(postgres_server, "estabelecimentos")
    assert metadata["dagster/table_name"].value == "cnpj.cnpj_completo"
    assert metadata["duplicate_keys"].value == 0
    assert metadata["materialized"].value is False


def test_rows_match_the_source_files(rows, quirks_landing: Path, quirks_report: dict) -> None:
    companies = {r[0]: r for r in _good(quirks_landing, "empresas")}
    simples = {r[0]: r for r in _good(quirks_landing, "simples")}
    partners: dict[str, list[list[str]]] = defaultdict(list)
    for record in _good(quirks_landing, "socios"):
        partners[record[0]].append(record)
    municipios, cnaes = _lookup(quirks_landing, "municipios"), _lookup(quirks_landing, "cnaes")
    naturezas, qualificacoes = (
        _lookup(quirks_landing, "naturezas"),
        _lookup(quirks_landing, "qualificacoes"),
    )
    establishments = _good(quirks_landing, "estabelecimentos")
    assert len(establishments) == sum(len(r) for r in rows.values())
    for record in establishments:
        (row,) = rows["".join(record[:3])]
        assert row["nome_fantasia"] == _or_none(record[4].replace("\x00", ""))
        assert (row["municipio"], row["municipio_descricao"]) == (
            record[20],
            municipios.get(record[20]),
        )
        assert row["cnae_fiscal_principal_descricao"] == cnaes[record[11]]
        company = companies.get(record[0])
        if company is None:
            assert record[0] in quirks_report["orphan_cnpj_basicos"]
            assert row["razao_social"] is None and row["natureza_juridica_descricao"] is None
        else:
            assert row["razao_social"] == company[1]
            assert row["natureza_juridica_descricao"] == naturezas[company[2]]
            assert row["qualificacao_responsavel_descricao"] == qualificacoes[company[3]]
        option = simples.get(record[0])
        assert row["opcao_pelo_simples"] == (_or_none(option[1]) if option else None)
        expected_partners = sorted((p[2], p[3], qualificacoes[p[4]]) for p in partners[record[0]])
        found = sorted(
            (
                p["nome_socio_razao_social"],
                p["cpf_cnpj_socio"] or "",
                p["qualificacao_socio_descricao"],
            )
            for p in row["socios"]
        )
        assert found == expected_partners


def test_the_sample_has_every_kind_of_company(rows, quirks_report: dict) -> None:
    flat = [r for group in rows.values() for r in group]
    assert any(len(r["socios"]) >= 2 for r in flat)
    assert any(r["socios"] == [] for r in flat)
    assert any(r["razao_social"] is None for r in flat)  # orphan establishments are kept
    assert any(r["opcao_pelo_simples"] == "S" for r in flat)
    assert any(not r["cnpj_basico"].isdigit() for r in flat)
    duplicate = next(q for q in quirks_report["quirks"] if q["kind"] == "duplicate_row")
    assert any(r["cnpj_basico"] == duplicate["cnpj_basico"] for r in flat)


def test_column_lineage_names_the_source_columns(built) -> None:
    metadata = built.get_asset_materialization_events()[0].materialization.metadata
    lineage = metadata["dagster/column_lineage"].value.deps_by_column

    def sources(column: str) -> set[tuple[str, str]]:
        return {(dep.asset_key.path[-1], dep.column_name) for dep in lineage[column]}

    assert set(lineage) == {c.name for c in COLUMNS}
    assert sources("razao_social") == {("empresas", "razao_social")}
    assert sources("cnpj") == {
        ("estabelecimentos", c) for c in ("cnpj_basico", "cnpj_ordem", "cnpj_dv")
    }
    assert sources("municipio_descricao") == {
        ("estabelecimentos", "municipio"),
        ("municipios", "codigo"),
        ("municipios", "descricao"),
    }
    assert {("socios", "nome_socio_razao_social"), ("qualificacoes", "descricao")} <= sources(
        "socios"
    )
    schema = metadata["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == [c.name for c in COLUMNS]


def test_it_is_a_view_that_costs_no_copy_and_is_audited(built, postgres_server: ServerUrl) -> None:
    kinds = query(
        postgres_server,
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'cnpj' AND c.relname = 'cnpj_completo'",
    )
    assert kinds == [("cnpj_completo", "v")]
    audit = query(
        postgres_server,
        "SELECT status, rows, target_table FROM cnpj_audit.table_load "
        "WHERE table_name = 'cnpj_completo' AND dagster_run_id = %s",
        (built.run_id,),
    )
    assert audit == [
        ("COMPLETED", count_rows(postgres_server, "estabelecimentos"), "cnpj.cnpj_completo")
    ]


def test_a_reader_filtering_one_company_uses_the_indexes(
    built, rows, postgres_server: ServerUrl
) -> None:
    company = next(iter(rows.values()))[0]["cnpj_basico"]
    plan = "\n".join(
        line
        for (line,) in query(
            postgres_server,
            "EXPLAIN SELECT * FROM cnpj.cnpj_completo WHERE release = %s AND cnpj_basico = %s",
            (RELEASE, company),
        )
    )
    for table in ("estabelecimentos", "empresas", "simples", "socios"):
        assert (
            f"Index Scan using {table}_2026_10" in plan
            or f"Bitmap Index Scan on {table}_2026_10" in plan
        ), table
    assert "Seq Scan on estabelecimentos" not in plan


def test_a_copy_on_demand_holds_the_views_rows_and_a_rebuild_replaces_it(
    built, postgres_server: ServerUrl, quirks_landing: Path
) -> None:
    view = query(
        postgres_server,
        "SELECT * FROM cnpj.cnpj_completo WHERE release = %s ORDER BY cnpj, _subbatch_id",
        (RELEASE,),
    )
    for _ in range(2):
        copied = build(quirks_landing, materialize=True)
        assert copied.success
        metadata = copied.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["dagster/table_name"].value == "cnpj.cnpj_completo_2026_10"
        assert metadata["materialized"].value is True
        assert (
            query(
                postgres_server,
                "SELECT * FROM cnpj.cnpj_completo_2026_10 ORDER BY cnpj, _subbatch_id",
            )
            == view
        )
    tables = query(
        postgres_server,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'cnpj' AND c.relkind = 'r' AND c.relname LIKE 'cnpj_completo%%'",
    )
    assert tables == [("cnpj_completo_2026_10",)]


def test_it_depends_on_the_ten_tables() -> None:
    deps = cnpj_completo.asset_deps[cnpj_completo.key]
    assert deps == {dg.AssetKey(["cnpj", table]) for table in TABLES}
    assert cnpj_completo.partitions_def == RELEASES


def test_codes_keep_the_byte_order_of_the_sources(built, postgres_server: ServerUrl) -> None:
    collations = dict(
        query(
            postgres_server,
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = 'cnpj' AND table_name = 'cnpj_completo'",
        )
    )
    assert collations["cnpj"] == collations["cnpj_basico"] == collations["municipio"] == "C"
    assert collations["razao_social"] is None and collations["municipio_descricao"] is None
