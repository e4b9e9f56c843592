"""`cnpj-assets lineage`: from a CNPJ back to its zip, member, lines, sub-batch and run."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import dagster as dg
import pytest

from cnpj_assets.cli import main
from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS
from cnpj_assets.defs.resources import LoadSettingsResource, build_resources
from cnpj_assets.lineage import (
    EXIT_FOUND,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    CnpjQuery,
    InvalidCnpj,
    format_rows,
    parse_cnpj,
    run,
)
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets_tests.conftest import RELEASE
from cnpj_assets_tests.helpers import query
from cnpj_assets_tests.oracle import read_table

FACTS = ("empresas", "estabelecimentos", "socios", "simples")
DAGSTER_URL = "http://dagster.example:3000"


@pytest.fixture(scope="module")
def loaded(
    postgres_server: ServerUrl, quirks_landing: Path, tmp_path_factory: pytest.TempPathFactory
) -> dg.ExecuteInProcessResult:
    """The four fact tables in small sub-batches, so a line range pins a row down."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    resources = build_resources(str(quirks_landing))
    scratch = str(tmp_path_factory.mktemp("scratch"))
    resources["load_settings"] = LoadSettingsResource(
        scratch_dir=scratch, batch_rows=200, subbatch_rows=50
    )
    result = dg.materialize(
        [a for a in TABLE_ASSETS if a.key.path[-1] in FACTS],
        instance=instance,
        partition_key=RELEASE,
        resources=resources,
    )
    assert result.success
    return result


def _records(landing: Path, table: str) -> list[tuple[str, int, list[str]]]:
    """(zip, start line, fields) of every good record of a table in the quirks release."""
    oracle = read_table(landing, RELEASE, table)
    return [(name, line, record) for name, f in oracle.items() for line, record in f.good]


def _lineage_json(server: ServerUrl, text: str) -> tuple[int, dict]:
    out, err = io.StringIO(), io.StringIO()
    code = run(text, as_json=True, database_url=server.url, base_url=DAGSTER_URL, out=out, err=err)
    assert code == EXIT_FOUND, err.getvalue()
    return code, json.loads(out.getvalue())


def _punctuated(cnpj: str) -> str:
    return f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"


@pytest.fixture(scope="module")
def alphanumeric_branch(quirks_landing: Path) -> tuple[str, int, list[str]]:
    """An establishment with an alphanumeric CNPJ deep in the big file, past the first sub-batch."""
    return next(
        (zip_name, line, record)
        for zip_name, line, record in _records(quirks_landing, "estabelecimentos")
        if zip_name == "Estabelecimentos0.zip" and line > 300 and not record[0].isdigit()
    )


def test_lineage_points_at_the_zip_member_and_line(
    loaded,
    postgres_server: ServerUrl,
    quirks_landing: Path,
    quirks_report: dict,
    alphanumeric_branch,
) -> None:
    zip_name, line, record = alphanumeric_branch
    cnpj = "".join(record[:3])
    _, answer = _lineage_json(postgres_server, _punctuated(cnpj))
    assert answer["query"] == cnpj
    (row,) = [r for r in answer["rows"] if r["table"] == "estabelecimentos"]
    assert (row["release"], row["cnpj"], row["zip_name"]) == (RELEASE, cnpj, zip_name)
    members = {f["zip"]: f["member"] for f in quirks_report["files"]}
    assert row["member_name"] == members[zip_name]
    assert (
        row["sha256"]
        == hashlib.sha256((quirks_landing / RELEASE / zip_name).read_bytes()).hexdigest()
    )
    assert row["first_line"] <= line <= row["last_line"]
    assert row["last_line"] - row["first_line"] < 60  # one sub-batch of 50 rows, not the file
    sub = query(
        postgres_server,
        "SELECT s.batch_load_id, s.subbatch_index FROM cnpj_audit.subbatch_load s WHERE s.id = %s",
        (row["subbatch_id"],),
    )
    assert sub == [(row["batch_id"], row["subbatch_index"])]
    assert row["dagster_run_id"] == loaded.run_id
    assert row["run_url"] == f"{DAGSTER_URL}/runs/{loaded.run_id}"
    assert row["loaded_at"]


def test_lineage_covers_every_row_of_the_company(
    loaded, postgres_server: ServerUrl, quirks_landing: Path, alphanumeric_branch
) -> None:
    basico = alphanumeric_branch[2][0]
    _, answer = _lineage_json(postgres_server, basico.lower())
    for table in FACTS:
        expected = sorted(
            (zip_name, line)
            for zip_name, line, r in _records(quirks_landing, table)
            if r[0] == basico
        )
        rows = [r for r in answer["rows"] if r["table"] == table]
        assert len(rows) == len(expected), table
        for row, (zip_name, line) in zip(rows, expected, strict=True):
            assert row["zip_name"] == zip_name
            assert row["first_line"] <= line <= row["last_line"]
    assert any(r["table"] == "estabelecimentos" for r in answer["rows"])
    assert any(r["table"] == "empresas" for r in answer["rows"])


def test_a_multiline_record_lies_inside_its_range(
    loaded, postgres_server: ServerUrl, quirks_landing: Path
) -> None:
    zip_name, line, record = next(
        r for r in _records(quirks_landing, "estabelecimentos") if "\n" in r[2][4]
    )
    _, answer = _lineage_json(postgres_server, "".join(record[:3]))
    (row,) = [r for r in answer["rows"] if r["table"] == "estabelecimentos"]
    assert row["zip_name"] == zip_name
    assert row["first_line"] <= line and line + 1 <= row["last_line"]


def test_the_cli_prints_a_readable_table_and_json(
    loaded, postgres_server: ServerUrl, alphanumeric_branch, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("CNPJ_DAGSTER_URL", "http://ui.internal:3333/")
    zip_name, _, record = alphanumeric_branch
    cnpj = "".join(record[:3])
    assert main(["lineage", _punctuated(cnpj)]) == EXIT_FOUND
    text = capsys.readouterr().out
    assert f"CNPJ {_punctuated(cnpj)}:" in text
    assert zip_name in text and "sha256" in text
    assert f"http://ui.internal:3333/runs/{loaded.run_id}" in text
    assert main(["lineage", cnpj, "--json"]) == EXIT_FOUND
    answer = json.loads(capsys.readouterr().out)
    assert {r["table"] for r in answer["rows"]} >= {"empresas", "estabelecimentos"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1234567", "has 7 characters"),
        ("12.345.678/0001-9", "has 13 characters"),
        ("12.AB*.345/01DE-35", "12 characters of 0-9 and A-Z followed by 2 check digits"),
        ("12.AB*.345", "a CNPJ base is 8 characters of 0-9 and A-Z"),
        ("12.ABC.345/01DE-3X", "followed by 2 check digits"),
        ("12.ABC.345/01DE-36", "wrong check digits 36, the first 12 characters give 35"),
    ],
)
def test_invalid_input_exits_2_with_a_reason(text: str, message: str, capsys) -> None:
    assert main(["lineage", text]) == EXIT_INVALID
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("invalid CNPJ: ") and message in captured.err


def test_an_unknown_cnpj_exits_1(
    loaded, postgres_server: ServerUrl, quirks_landing: Path, capsys
) -> None:
    body = "ZZZZZZZZ0001"
    assert all(r[0] != body[:8] for _, _, r in _records(quirks_landing, "estabelecimentos"))
    assert main(["lineage", body + check_digits(body)]) == EXIT_NOT_FOUND
    captured = capsys.readouterr()
    assert "CNPJ ZZ.ZZZ.ZZZ/0001-" in captured.err and "not found" in captured.err


def test_parse_accepts_every_spelling() -> None:
    expected = CnpjQuery("12ABC345", "01DE", "35")
    for text in (
        "12.ABC.345/01DE-35",
        "12ABC34501DE35",
        " 12.abc.345/01de-35 ",
        "12 ABC 345 01DE 35",
    ):
        assert parse_cnpj(text) == expected
    assert parse_cnpj("12.345.678") == CnpjQuery("12345678")
    numeric = "11222333" + "0001"
    assert parse_cnpj(numeric + check_digits(numeric)).dv == "81"
    with pytest.raises(InvalidCnpj):
        parse_cnpj("11.222.333/0001-80")
    assert CnpjQuery("12ABC345", "01DE", "35").formatted == "12.ABC.345/01DE-35"


def test_format_rows_without_rows_still_names_the_query() -> None:
    assert format_rows(CnpjQuery("12345678"), []) == "CNPJ 12.345.678: 0 row(s) in 0 release(s) ()"


def test_the_lineage_view_has_one_row_per_subbatch(loaded, postgres_server: ServerUrl) -> None:
    counts = query(
        postgres_server,
        """SELECT (SELECT count(*) FROM cnpj_audit.lineage WHERE dagster_run_id = %(run)s),
                  (SELECT count(*) FROM cnpj_audit.subbatch_load s
                   JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
                   JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
                   JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
                   WHERE t.dagster_run_id = %(run)s)""",
        {"run": loaded.run_id},
    )[0]
    assert counts[0] == counts[1] > len(FACTS)


def _documented_queries() -> list[str]:
    """The SQL examples of docs/lineage.md's "Lineage of a CNPJ", one statement each."""
    page = (Path(__file__).parents[1] / "docs" / "lineage.md").read_text(encoding="utf-8")
    section = page.split("## Lineage of a CNPJ", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    return [statement for block in blocks for statement in block.split(";") if statement.strip()]


def test_the_documented_lineage_queries_find_the_loaded_rows(
    loaded, postgres_server: ServerUrl, alphanumeric_branch
) -> None:
    statements = _documented_queries()
    assert len(statements) == 3
    basico = alphanumeric_branch[2][0]
    for statement in statements:
        concrete = statement.replace("12ABC345", basico).replace("<run id>", loaded.run_id)
        assert query(postgres_server, concrete), statement
