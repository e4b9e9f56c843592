"""Tests of the synthetic release generator: layout, dialect, realism, quirks, determinism.

The release under test is parsed back with Python's csv module and with a strict regex of
the Receita Federal dialect, so what is checked is the bytes other modules will read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from cnpj_assets.cli import main
from cnpj_assets.cnpj_number import check_digits, is_valid
from cnpj_assets.specs import TABLES, ColumnKind, TableSpec
from cnpj_assets.synthetic import ReleaseReport, write_release
from cnpj_assets.synthetic.companies import Companies
from cnpj_assets.synthetic.lookups import LOOKUP_SIZES
from cnpj_assets.synthetic.scale import REAL_ROWS

RELEASE = "2026-10"
STAMP = "61012"
ROWS = 2000
FACTS = ("empresas", "estabelecimentos", "socios", "simples")
NULL_DATES = {"00000000", "0", ""}
RECORD = re.compile(r'"(?:[^"]|"")*"(?:;"(?:[^"]|"")*")*\n|\n')  # a quoted record or a blank line

Record = tuple[str, int, list[str]]  # zip name, physical start line, fields


def _member(folder: Path, zip_name: str) -> tuple[str, bytes]:
    with zipfile.ZipFile(folder / zip_name) as archive:
        (name,) = archive.namelist()
        return name, archive.read(name)


def _parse(raw: bytes) -> list[tuple[int, list[str]]]:
    """(physical start line, fields) of each record, as the csv module reads them."""
    reader = csv.reader(
        io.StringIO(raw.decode("latin-1"), newline=""), delimiter=";", quotechar='"'
    )
    records, line = [], 1
    for fields in reader:
        if fields:
            records.append((line, fields))
        line = reader.line_num + 1
    return records


def _reference_check_digits(body: str) -> str:
    """An independent implementation of the 2026 rule, to judge the generator's."""
    digits = []
    for weights in ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)):
        text = body + "".join(digits)
        remainder = sum(w * (ord(c) - 48) for w, c in zip(weights, text, strict=True)) % 11
        digits.append("0" if remainder < 2 else str(11 - remainder))
    return "".join(digits)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReleaseReport]:
    landing = tmp_path_factory.mktemp("landing")
    report = write_release(release=RELEASE, rows=ROWS, out_dir=landing, seed=0, quirks=True)
    return landing / RELEASE, report


@pytest.fixture(scope="module")
def tables(release: tuple[Path, ReleaseReport]) -> dict[str, list[Record]]:
    folder, _ = release
    parsed: dict[str, list[Record]] = {}
    for spec in TABLES.values():
        parsed[spec.name] = [
            (zip_name, line, fields)
            for zip_name in spec.zip_names()
            for line, fields in _parse(_member(folder, zip_name)[1])
        ]
    return parsed


@pytest.fixture(scope="module")
def clean(
    tables: dict[str, list[Record]], release: tuple[Path, ReleaseReport]
) -> dict[str, list[list[str]]]:
    """Fields of every record that carries no quirk, per table."""
    quirk_lines = {(q.zip, q.line) for q in release[1].quirks}
    return {
        table: [fields for zip_name, line, fields in records if (zip_name, line) not in quirk_lines]
        for table, records in tables.items()
    }


def _column(clean: dict[str, list[list[str]]], table: str, column: str) -> list[str]:
    index = TABLES[table].column_names.index(column)
    return [fields[index] for fields in clean[table]]


def test_release_has_the_37_zips_with_real_member_names(
    release: tuple[Path, ReleaseReport],
) -> None:
    folder, report = release
    expected = {z: spec for spec in TABLES.values() for z in spec.zip_names()}
    assert len(expected) == 37
    assert {p.name for p in folder.glob("*.zip")} == set(expected)
    for zip_name, spec in expected.items():
        number = int(zip_name[len(spec.zip_base)]) if spec.file_count > 1 else 0
        with zipfile.ZipFile(folder / zip_name) as archive:
            (info,) = archive.infolist()
        assert info.filename == spec.member_name(number, STAMP)
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.date_time == (2026, 10, 12, 0, 0, 0)
    assert [f.zip for f in report.files] == list(expected)
    assert _member(folder, "Simples.zip")[0] == f"F.K03200$W.SIMPLES.CSV.D{STAMP}"


def test_records_have_the_spec_column_count_except_rejected_quirks(
    release: tuple[Path, ReleaseReport],
) -> None:
    folder, report = release
    for file in report.files:
        name, raw = _member(folder, file.zip)
        records = _parse(raw)
        width = len(TABLES[file.table].columns)
        wrong = {line for line, fields in records if len(fields) != width}
        rejected = {q.line for q in report.quirks if q.zip == file.zip and q.expected == "rejected"}
        assert wrong == rejected, file.zip
        assert len(records) == file.records
        assert raw.count(b"\n") == file.physical_lines
        assert name == file.member


def test_every_field_is_quoted_with_lf_endings_in_latin1(
    release: tuple[Path, ReleaseReport],
) -> None:
    folder, report = release
    accented = 0
    for file in report.files:
        raw = _member(folder, file.zip)[1]
        text = raw.decode("latin-1")
        position = 0
        while position < len(text):
            match = RECORD.match(text, position)
            assert match, f"{file.zip}: unquoted field near {text[position : position + 80]!r}"
            position = match.end()
        assert b"\r" not in raw
        assert "Ç".encode() not in raw and "Ã".encode() not in raw  # no UTF-8 sequences
        accented += sum(raw.count(c.encode("latin-1")) for c in "ÁÉÍÓÚÂÊÔÃÕÇ")
    assert accented > 1000


def test_same_seed_same_bytes_other_seed_other_facts(tmp_path: Path) -> None:
    def files(seed: int, name: str) -> dict[str, bytes]:
        write_release(release=RELEASE, rows=300, out_dir=tmp_path / name, seed=seed, quirks=True)
        return {p.name: p.read_bytes() for p in sorted((tmp_path / name / RELEASE).iterdir())}

    first, again, other = files(0, "a"), files(0, "b"), files(1, "c")
    assert first == again
    assert len(first) == 38  # 37 zips and quirks.json
    for spec in TABLES.values():
        for zip_name in spec.zip_names():
            same = first[zip_name] == other[zip_name]
            assert same is spec.is_lookup, zip_name  # lookups are fixed, facts follow the seed


def test_processes_write_the_same_release_as_one_process(tmp_path: Path) -> None:
    def files(workers: int) -> dict[str, bytes]:
        name = f"workers{workers}"
        write_release(RELEASE, 3000, tmp_path / name, seed=5, quirks=True, workers=workers)
        return {p.name: p.read_bytes() for p in sorted((tmp_path / name / RELEASE).iterdir())}

    alone, side_by_side = files(1), files(3)
    assert len(alone) == 38  # 37 zips and quirks.json, the report in the same order
    assert side_by_side == alone


def test_a_script_without_a_main_guard_gets_a_clear_error(tmp_path: Path) -> None:
    """Spawned workers import the calling script again: without the guard, it says so."""
    script = tmp_path / "make_release.py"
    script.write_text(
        "from pathlib import Path\n"
        "from cnpj_assets.synthetic import write_release\n"
        f"write_release('{RELEASE}', 200, Path({str(tmp_path)!r}), workers=2)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "WorkerDied: a process writing the zips of" in done.stderr
    assert 'outside `if __name__ == "__main__":`' in done.stderr


def test_scale_gives_the_real_row_counts_times_the_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scale = 0.0002
    argv = ["fake-release", "--release", RELEASE, "--scale", str(scale), "--out", str(tmp_path)]
    assert main(argv) == 0
    report = ReleaseReport.load(tmp_path / RELEASE)
    assert report.rows == round(REAL_ROWS["empresas"] * scale) == 13_720
    for table, real in REAL_ROWS.items():
        assert 0.95 * real * scale <= report.records(table) <= 1.05 * real * scale, table
    for table, size in LOOKUP_SIZES.items():
        assert report.records(table) == size, table
    written = sum(f.records for f in report.files)
    assert f"wrote {written:,} records in " in capsys.readouterr().out


def test_lookups_have_their_real_sizes(clean: dict[str, list[list[str]]]) -> None:
    sizes = {
        "cnaes": 1359,
        "motivos": 63,
        "municipios": 5572,
        "naturezas": 91,
        "paises": 255,
        "qualificacoes": 68,
    }
    widths = {
        "cnaes": 7,
        "motivos": 2,
        "municipios": 4,
        "naturezas": 4,
        "paises": 3,
        "qualificacoes": 2,
    }
    for table, size in sizes.items():
        codes = [fields[0] for fields in clean[table]]
        assert len(codes) == len(set(codes)) == size, table
        assert all(len(code) == widths[table] and code.isdigit() for code in codes), table


def test_fact_tables_scale_like_a_real_release(
    release: tuple[Path, ReleaseReport], tables: dict[str, list[Record]]
) -> None:
    _, report = release
    ratios = {"estabelecimentos": (1.0, 1.1), "socios": (0.33, 0.47), "simples": (0.52, 0.64)}
    assert report.expected_loaded("empresas") == ROWS + 1  # the exact duplicate loads twice
    for table, (low, high) in ratios.items():
        assert low * ROWS <= report.records(table) <= high * ROWS, table
    for table in FACTS:
        assert report.records(table) == len(tables[table])
        assert all(f.records > 0 for f in report.files if f.table == table)
    big, small = report.file("Estabelecimentos0.zip"), report.file("Estabelecimentos5.zip")
    assert big.records > 3 * small.records


def test_codes_keep_their_zeros_and_widths(clean: dict[str, list[list[str]]]) -> None:
    for table in FACTS:
        spec = TABLES[table]
        for column in spec.columns:
            if column.kind is not ColumnKind.CODE or column.width is None:
                continue
            values = [v for v in _column(clean, table, column.name) if v]
            assert values, (table, column.name)
            assert all(len(v) == column.width for v in values), (table, column.name)
            if column.name not in (
                "cnpj_basico",
                "cnpj_ordem",
                "uf",
                "opcao_pelo_simples",
                "opcao_mei",
            ):
                assert all(v.isdigit() for v in values), (table, column.name)
    assert set(_column(clean, "empresas", "porte_empresa")) == {"00", "01", "03", "05"}
    assert set(_column(clean, "estabelecimentos", "situacao_cadastral")) == {
        "01",
        "02",
        "03",
        "04",
        "08",
    }
    municipios = _column(clean, "estabelecimentos", "municipio")
    assert any(m.startswith("0") for m in municipios)
    assert any(cep.startswith("0") for cep in _column(clean, "estabelecimentos", "cep"))
    ufs = set(_column(clean, "estabelecimentos", "uf"))
    assert "EX" in ufs and {"SP", "MG", "RJ"} <= ufs


def test_names_dates_and_amounts_look_real(clean: dict[str, list[list[str]]]) -> None:
    names = _column(clean, "empresas", "razao_social")
    assert sum(any(c in n for c in "ÁÉÍÓÚÂÊÔÃÕÇ") for n in names) > len(names) // 5
    assert any(re.fullmatch(r"[A-ZÀ-Ü .]+ \d{11}", n) for n in names)  # sole trader + CPF
    capital = _column(clean, "empresas", "capital_social")
    assert all(re.fullmatch(r"\d+,\d{2}", c) for c in capital)
    assert "0,00" in capital and any(not c.endswith(",00") for c in capital)
    dates: Counter[str] = Counter()
    for table in FACTS:
        for column in TABLES[table].columns:
            if column.kind is ColumnKind.DATE:
                dates.update(_column(clean, table, column.name))
    assert set(dates) >= NULL_DATES
    for value in set(dates) - NULL_DATES:
        assert dt.datetime.strptime(value, "%Y%m%d").date() <= dt.date(2026, 10, 12)
    secondary = _column(clean, "estabelecimentos", "cnae_fiscal_secundaria")
    assert "" in secondary
    assert all(re.fullmatch(r"\d{7}(,\d{7})*", s) for s in secondary if s)


def test_partners_have_masked_cpfs_and_missing_representatives(
    clean: dict[str, list[list[str]]],
) -> None:
    socios = clean["socios"]
    people = [f for f in socios if f[1] == "2"]
    assert people and all(re.fullmatch(r"\*\*\*\d{6}\*\*", f[3]) for f in people)
    companies = [f for f in socios if f[1] == "1"]
    assert companies and all(_reference_check_digits(f[3][:12]) == f[3][12:] for f in companies)
    missing = [f for f in socios if f[7] == "***000000**"]
    assert len(missing) > len(socios) // 2
    assert all(f[8] == "" and f[9] == "00" for f in missing)
    represented = [f for f in socios if f[7] != "***000000**"]
    assert represented and all(re.fullmatch(r"\*\*\*\d{6}\*\*", f[7]) and f[8] for f in represented)


def test_cnpjs_have_valid_check_digits_and_some_are_alphanumeric(
    clean: dict[str, list[list[str]]],
) -> None:
    assert _reference_check_digits("12ABC34501DE") == "35"  # the Receita's own example
    establishments = clean["estabelecimentos"]
    for basico, ordem, dv, *_ in establishments:
        assert re.fullmatch(r"[0-9A-Z]{8}", basico) and re.fullmatch(r"\d{2}", dv)
        assert _reference_check_digits(basico + ordem) == dv, basico + ordem + dv
    alphanumeric = sum(not f[0].isdigit() for f in establishments)
    assert 0.015 < alphanumeric / len(establishments) < 0.05


def test_keys_are_unique_and_every_company_has_one_head_office(
    release: tuple[Path, ReleaseReport], tables: dict[str, list[Record]]
) -> None:
    _, report = release
    duplicate = {q.cnpj_basico for q in report.quirks if q.kind == "duplicate_row"}
    repeated = {b for b, n in Counter(f[0] for _, _, f in tables["empresas"]).items() if n > 1}
    assert repeated == duplicate and len(duplicate) == 1
    rejected = {(q.zip, q.line) for q in report.quirks if q.expected == "rejected"}
    loaded = [f for z, line, f in tables["estabelecimentos"] if (z, line) not in rejected]
    keys = [tuple(f[:3]) for f in loaded]
    assert len(keys) == len(set(keys))
    head_offices = Counter(f[0] for f in loaded if f[3] == "1")
    assert all(f[1] == "0001" for f in loaded if f[3] == "1")
    assert all(f[1] != "0001" for f in loaded if f[3] == "2")
    assert set(head_offices.values()) == {1}
    assert {f[0] for _, _, f in tables["empresas"]} <= set(head_offices)
    simples = [f[0] for _, _, f in tables["simples"]]
    assert len(simples) == len(set(simples))


def _lookup_codes(clean: dict[str, list[list[str]]], table: str) -> set[str]:
    return {fields[0] for fields in clean[table]}


def test_facts_point_at_existing_rows_except_the_intended_orphans(
    release: tuple[Path, ReleaseReport],
    tables: dict[str, list[Record]],
    clean: dict[str, list[list[str]]],
) -> None:
    _, report = release
    assert report.orphan_codes == {
        "motivos": ("32",),
        "municipios": ("1182",),
        "paises": ("042", "693", "755"),
    }
    orphans_seen: set[tuple[str, str]] = set()
    for table in FACTS:
        spec: TableSpec = TABLES[table]
        for column in spec.columns:
            lookup = column.references
            if lookup is None or lookup == "empresas":
                continue
            values = {v for v in _column(clean, table, column.name) if v}
            unknown = values - _lookup_codes(clean, lookup)
            assert unknown <= set(report.orphan_codes.get(lookup, ())), (
                table,
                column.name,
                unknown,
            )
            orphans_seen |= {(lookup, code) for code in unknown}
        assert report.records(table) > 0
    expected_orphans = {(t, c) for t, codes in report.orphan_codes.items() for c in codes}
    assert orphans_seen == expected_orphans
    cnaes = _lookup_codes(clean, "cnaes")
    for listed in _column(clean, "estabelecimentos", "cnae_fiscal_secundaria"):
        assert set(filter(None, listed.split(","))) <= cnaes
    companies = {fields[0] for _, _, fields in tables["empresas"]}  # quirk records included
    orphan_companies = set(report.orphan_cnpj_basicos)
    assert orphan_companies and not orphan_companies & companies
    establishments = set(_column(clean, "estabelecimentos", "cnpj_basico"))
    assert establishments - companies == orphan_companies
    assert set(_column(clean, "socios", "cnpj_basico")) <= companies
    assert set(_column(clean, "simples", "cnpj_basico")) <= companies
    share = sum(v == "32" for v in _column(clean, "estabelecimentos", "motivo_situacao_cadastral"))
    assert share < 0.02 * len(clean["estabelecimentos"])


def test_quirks_cover_the_layout_and_spread_over_files(release: tuple[Path, ReleaseReport]) -> None:
    _, report = release
    kinds = Counter(q.kind for q in report.quirks)
    assert set(kinds) == {
        "nul_byte", "embedded_newline", "doubled_quotes", "semicolon_in_field", "date_7_digits",
        "date_year_0202", "date_year_4100", "cep_7_digits", "too_few_columns", "too_many_columns",
        "duplicate_row", "blank_last_line",
    }  # fmt: skip
    assert kinds["doubled_quotes"] >= 4 and kinds["duplicate_row"] == 2
    assert {q.kind for q in report.quirks if q.expected == "rejected"} == {
        "too_few_columns",
        "too_many_columns",
    }
    assert {q.table for q in report.quirks} == set(FACTS)
    assert len({q.zip for q in report.quirks}) >= 4
    assert report.expected_rejects("estabelecimentos") == report.expected_rejects("socios") == 1
    assert all(q.cnpj_basico for q in report.quirks if q.kind != "blank_last_line")


def test_quirks_sit_on_their_reported_physical_lines(release: tuple[Path, ReleaseReport]) -> None:
    folder, report = release
    for quirk in report.quirks:
        raw = _member(folder, quirk.zip)[1]
        lines = raw.split(b"\n")
        line = lines[quirk.line - 1]
        width = len(TABLES[quirk.table].columns)
        if quirk.kind == "blank_last_line":
            assert line == b"" and quirk.line == raw.count(b"\n") and raw.endswith(b'"\n\n')
            continue
        assert line.startswith(f'"{quirk.cnpj_basico}";'.encode()), quirk
        record = line + b"\n" + lines[quirk.line] if quirk.kind == "embedded_newline" else line
        ((_, fields),) = _parse(record + b"\n")
        if quirk.kind == "embedded_newline":
            assert line.count(b'"') % 2 == 1  # the record goes on at the next line
        if quirk.kind == "duplicate_row":
            partner = quirk.line if lines[quirk.line] == line else quirk.line - 2
            assert lines[partner] == line
        elif quirk.kind in ("too_few_columns", "too_many_columns"):
            assert len(fields) == width + (1 if quirk.kind == "too_many_columns" else -1)
        else:
            assert fields[TABLES[quirk.table].column_names.index(quirk.column)] == quirk.value
            assert f'"{quirk.value.replace(chr(34), 2 * chr(34))}"'.encode("latin-1") in record
        if quirk.kind == "nul_byte":
            assert b"\x00" in line
    two_lines = [q for q in report.quirks if q.kind == "embedded_newline"][0]
    after = [q for q in report.quirks if q.zip == two_lines.zip and q.line > two_lines.line]
    assert after  # later quirks in that file were located past the extra line


def test_without_quirks_the_files_are_clean(tmp_path: Path) -> None:
    report = write_release(release="2025-03", rows=150, out_dir=tmp_path, seed=3)
    folder = tmp_path / "2025-03"
    assert report.quirks == () and not report.with_quirks
    assert _member(folder, "Empresas0.zip")[0] == "K3241.K03200Y0.D50312.EMPRECSV"
    for file in report.files:
        raw = _member(folder, file.zip)[1]
        width = len(TABLES[file.table].columns)
        assert b"\x00" not in raw and b"\n\n" not in raw
        assert raw.count(b"\n") == file.records == len(_parse(raw))
        assert all(len(fields) == width for _, fields in _parse(raw))


def test_report_round_trips_through_quirks_json(release: tuple[Path, ReleaseReport]) -> None:
    folder, report = release
    assert ReleaseReport.load(folder) == report
    data = json.loads((folder / "quirks.json").read_text(encoding="utf-8"))
    assert data["totals"]["estabelecimentos"] == {
        "records": report.records("estabelecimentos"),
        "expected_rejects": 1,
        "expected_loaded": report.records("estabelecimentos") - 1,
    }
    nul = next(q for q in data["quirks"] if q["kind"] == "nul_byte")
    assert nul["value"] == "MERCADO\x00CENTRAL" and nul["table"] == "estabelecimentos"
    summary = report.summary()
    assert "Estabelecimentos2.zip" in summary and "too_few_columns" in summary


def test_check_digits_follow_the_2026_rule() -> None:
    assert check_digits("12ABC34501DE") == "35"  # the Receita's alphanumeric example
    assert check_digits("112223330001") == "81"  # the classic numeric example
    assert is_valid("00000000000191") and not is_valid("00000000000192")
    assert not is_valid("12abc34501de35")  # lower case is not a CNPJ character
    with pytest.raises(ValueError):
        check_digits("12ABC")


def test_company_keys_are_a_bijection() -> None:
    companies = Companies(seed=7, rows=200_000, orphan_count=0)
    keys = [companies.key(index).basico for index in range(200_000)]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[0-9A-Z]{8}", k) for k in keys)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        write_release(release="2026-13", rows=10, out_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 100"):
        write_release(release=RELEASE, rows=50, out_dir=tmp_path, quirks=True)


def test_cli_fake_release_writes_the_37_zips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "fake-release",
        "--release",
        RELEASE,
        "--rows",
        "2000",
        "--out",
        str(tmp_path),
        "--quirks",
    ]
    assert main(argv) == 0
    folder = tmp_path / RELEASE
    assert len(list(folder.glob("*.zip"))) == 37
    assert ReleaseReport.load(folder).with_quirks
    assert "Estabelecimentos9.zip" in capsys.readouterr().out
