"""Labels: every code of read/labels.py reads as its label in cnpj_current.cnpj_completo,
an unknown code reads NULL and is counted by a WARN check that never blocks publication.

The module loads one release through `cnpj-assets load` in a database of its own (it
publishes), after writing every labelled code, and one unknown code per column, into the
first records of each table's first file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from cnpj_assets.cli import main
from cnpj_assets.defs.checks import CheckMode, QualityConfig, evaluate
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.quality.rules import UNKNOWN_LABELS
from cnpj_assets.read.label_table import ensure_labels, wanted_rows
from cnpj_assets.read.labels import label_set_for
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import Records, database_of_its_own, query, rewrite_member
from cnpj_assets_tests.oracle import read_table

RELEASE = "2025-07"
UNKNOWN = {  # a code per labelled column that the layout does not define
    "situacao_cadastral": "99",
    "identificador_matriz_filial": "7",
    "porte_empresa": "09",
    "identificador_socio": "5",
    "faixa_etaria": "X",
    "opcao_pelo_simples": "Q",
    "opcao_mei": "W",
}
FILES = {
    "estabelecimentos": "Estabelecimentos0.zip",
    "empresas": "Empresas0.zip",
    "socios": "Socios0.zip",
    "simples": "Simples.zip",
}


def labelled_columns(table: str) -> list[str]:
    return [c for c in TABLES[table].column_names if label_set_for(table, c) is not None]


def every_code(table: str) -> Callable[[Records], Records]:
    """Give the first records of the right width every labelled code of each labelled
    column in turn, then the column's unknown code."""
    spec = TABLES[table]

    def change(records: Records) -> Records:
        good = [r for r in records if len(r) == len(spec.columns)]
        for column in labelled_columns(table):
            label_set = label_set_for(table, column)
            assert label_set is not None
            codes = [code for code, _ in label_set.labels] + [UNKNOWN[column]]
            index = spec.column_names.index(column)
            for record, code in zip(good, codes, strict=False):
                record[index] = code
        return records

    return change


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_labels") as own:
        yield own


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("labels_landing")
    write_release(release=RELEASE, rows=1500, out_dir=landing, seed=29)
    for table, zip_name in FILES.items():
        rewrite_member(landing / RELEASE / zip_name, every_code(table))
    return landing


@pytest.fixture(scope="module")
def published(server: ServerUrl, landing: Path) -> None:
    """Unknown codes in every labelled column, and the release is still published."""
    assert main(["load", "--release", RELEASE, "--landing", str(landing)]) == 0
    shown = query(server, "SELECT DISTINCT release FROM cnpj_current.estabelecimentos")
    assert shown == [(RELEASE,)]


@pytest.fixture(scope="module")
def completo(published, server: ServerUrl) -> list[dict]:
    with (
        psycopg.connect(server.url) as connection,
        connection.cursor(row_factory=dict_row) as cursor,
    ):
        return cursor.execute("SELECT * FROM cnpj_current.cnpj_completo").fetchall()


def test_every_code_of_every_column_reads_as_its_label(
    completo: list[dict], server: ServerUrl
) -> None:
    """Every row, every labelled column: the label labels.py gives its code (NULL for an
    unknown code; none for a company without a Simples row); each column shows every
    one of its codes and its unknown code."""
    simples = {
        basico
        for (basico,) in query(
            server, "SELECT cnpj_basico FROM cnpj.simples WHERE release = %s", (RELEASE,)
        )
    }
    seen: dict[str, set[str | None]] = {}
    for row in completo:
        holders = [(table, row) for table in ("estabelecimentos", "empresas", "simples")]
        holders += [("socios", partner) for partner in row["socios"]]
        for table, holder in holders:
            for column in labelled_columns(table):
                label_set = label_set_for(table, column)
                assert label_set is not None
                code = holder[column]
                has_row = table != "simples" or row["cnpj_basico"] in simples
                expected = label_set.label(code) if has_row else None
                assert holder[f"{column}_descricao"] == expected, (column, code)
                seen.setdefault(column, set()).add(code)
    for column, unknown in UNKNOWN.items():
        table = next(t for t in FILES if column in labelled_columns(t))
        label_set = label_set_for(table, column)
        assert label_set is not None
        codes = {code or None for code, _ in label_set.labels}
        assert seen[column] >= codes | {unknown}, column


def test_the_labels_read_as_labels_py_writes_them(completo: list[dict]) -> None:
    """Spot values, accents kept: the table holds labels.py's text, not a copy of it."""
    by_code = {(row["situacao_cadastral"], row["situacao_cadastral_descricao"]) for row in completo}
    assert ("02", "ATIVA") in by_code and ("99", None) in by_code
    partners = {
        (p["identificador_socio"], p["identificador_socio_descricao"])
        for row in completo
        for p in row["socios"]
    }
    assert ("1", "PESSOA JURÍDICA") in partners


def test_the_labels_table_holds_labels_py_with_its_source(published, server: ServerUrl) -> None:
    rows = set(query(server, "SELECT domain, codigo, descricao, source FROM cnpj.labels"))
    assert rows == wanted_rows()
    assert ("porte_empresa", "00", "NÃO INFORMADO") in {r[:3] for r in rows}


def test_ensuring_the_labels_again_writes_nothing(published, server: ServerUrl) -> None:
    with psycopg.connect(server.url, autocommit=True) as connection:
        before = connection.execute(
            "SELECT xmin::text, domain, codigo FROM cnpj.labels ORDER BY 2, 3"
        ).fetchall()
        ensure_labels(connection)
        after = connection.execute(
            "SELECT xmin::text, domain, codigo FROM cnpj.labels ORDER BY 2, 3"
        ).fetchall()
        assert after == before
        connection.execute("UPDATE cnpj.labels SET descricao = 'x' WHERE codigo = '02'")
        ensure_labels(connection)
        fixed = connection.execute("SELECT domain, codigo, descricao, source FROM cnpj.labels")
        assert set(fixed.fetchall()) == wanted_rows()


def unknown_in_files(landing: Path, table: str) -> Counter[str]:
    """Rows per column whose code the labels lack, counted from the files."""
    spec = TABLES[table]
    counted: Counter[str] = Counter()
    for oracle in read_table(landing, RELEASE, table).values():
        for _, record in oracle.good:
            for column in labelled_columns(table):
                label_set = label_set_for(table, column)
                assert label_set is not None
                code = record[spec.column_names.index(column)]
                if code and label_set.label(code) is None:
                    counted[column] += 1
    return counted


@pytest.mark.parametrize("mode", [CheckMode.IN_LOAD, CheckMode.DEEP])
@pytest.mark.parametrize("table", list(FILES))
def test_the_warn_check_counts_the_unknown_codes(
    published, server: ServerUrl, landing: Path, table: str, mode: CheckMode
) -> None:
    with psycopg.connect(server.url, autocommit=True) as connection:
        (result,) = evaluate(
            connection, TABLES[table], RELEASE, [UNKNOWN_LABELS], QualityConfig(mode=mode)
        )
    expected = unknown_in_files(landing, table)
    assert set(expected) == set(labelled_columns(table))
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    for column, rows in expected.items():
        assert result.metadata[f"{column}_unknown_rows"].value == rows
        assert UNKNOWN[column] in result.metadata["unknown_codes"].value[column]
    assert result.metadata["unknown_label_rows"].value == sum(expected.values())


def doc_statements() -> list[str]:
    """The SQL examples of docs/reading.md, one statement each."""
    page = (Path(__file__).parents[1] / "docs" / "reading.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", page, flags=re.S)
    return [s for block in blocks for s in block.split(";") if s.strip()]


def test_the_documented_queries_answer(published, server: ServerUrl) -> None:
    """Every example of docs/reading.md runs and finds rows, with a code and a company of
    the release in place of the page's."""
    ((code, basico),) = query(
        server,
        "SELECT cnae, cnpj_basico FROM cnpj_current.cnaes_secundarias ORDER BY cnae LIMIT 1",
    )
    statements = doc_statements()
    assert len(statements) == 8
    for statement in statements:
        concrete = statement.replace("6201501", code).replace("12345678", basico)
        assert query(server, concrete), statement
