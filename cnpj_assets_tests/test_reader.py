"""The reader on hand-made members whose every line is known."""

from __future__ import annotations

import datetime
import hashlib
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from cnpj_assets.reader import MemberError, ReaderSettings, extract_member, read_member
from cnpj_assets.reader.member import find_blank_lines
from cnpj_assets.specs import TABLES
from cnpj_assets_tests.helpers import MEMBER, make_zip


def read_all(zip_path: Path, scratch: Path, table: str = "cnaes", batch_rows: int = 2):
    member = extract_member(zip_path, scratch)
    read = read_member(TABLES[table], member, ReaderSettings(batch_rows=batch_rows))
    rows, spans = [], []
    for batch in read.batches():
        for sub in batch.subbatches(1):
            rows.extend(sub.data.to_pylist())
            spans.append(sub.span)
    return member, read.result, rows, [read.result.lines(s) for s in spans]


QUIRKY = "\n".join(
    [
        '"0111301";"Cultivo de arroz ÇÃO"',  # 1 accents
        '"0111302";"Cultivo de milho"',  # 2
        "",  # 3 blank
        '"0111303";"nome com\nnova linha"',  # 4-5 newline inside quotes
        '"0111304"',  # 6 too few columns
        '"0111305";"a\nb";"extra"',  # 7-8 too many columns, spanning two lines
        '"0111306";"nul\x00byte"',  # 9
        '"0111307";"aspas ""duplas"" e ; ponto e vírgula"',  # 10
        '"0011308";"zeros à esquerda"',  # 11
        "",  # 12 blank last line: the file ends with two newlines
        "",
    ]
).encode("latin-1")


def test_every_line_is_loaded_or_rejected_with_its_line(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "Cnaes.zip", QUIRKY)
    member, result, rows, lines = read_all(zip_path, tmp_path / "scratch")
    assert [r["codigo"] for r in rows] == [
        "0111301",
        "0111302",
        "0111303",
        "0111306",
        "0111307",
        "0011308",
    ]
    assert lines == [(1, 1), (2, 2), (4, 5), (9, 9), (10, 10), (11, 11)]
    assert [(r.line, r.raw) for r in result.rejects] == [
        (6, '"0111304"'),
        (7, '"0111305";"a\nb";"extra"'),
    ]
    assert "MISSING COLUMNS" in result.rejects[0].reason
    assert "TOO MANY COLUMNS" in result.rejects[1].reason
    assert result.blank_lines == [3, 12]
    assert member.stats.physical_lines == 12


def test_one_empty_field_past_the_last_is_a_trailing_delimiter_and_the_record_loads(
    tmp_path: Path,
) -> None:
    """DuckDB reads `;` or `;""` after the last field as a trailing delimiter: the record
    loads with its columns (nothing is lost: the extra field is empty). A non-empty
    extra field is a reject. Written out by hand: the oracle has no such rule."""
    data = b'"1";"a"\n"2";"b";\n"3";"c";""\n"4";"d";"x"\n"5";"e"\n'
    _, result, rows, lines = read_all(make_zip(tmp_path / "Cnaes.zip", data), tmp_path / "s")
    assert [(r["codigo"], r["descricao"]) for r in rows] == [
        ("1", "a"),
        ("2", "b"),
        ("3", "c"),
        ("5", "e"),
    ]
    assert lines == [(1, 1), (2, 2), (3, 3), (5, 5)]
    assert [(r.line, "TOO MANY COLUMNS" in r.reason) for r in result.rejects] == [(4, True)]


@pytest.mark.parametrize(
    ("records", "lines", "blank", "continuation"),
    [
        (['"01";"a"', '"02";"b"', '"03";"c"'], [(1, 1), (2, 2), (3, 3)], [], 0),
        (['"01";"a"', "", '"02";"b"', ""], [(1, 1), (3, 3)], [2, 4], 0),
        (['"01"', '"02";"x\ny\nz"', '"03";"c"'], [(2, 4), (5, 5)], [], 2),
        (["", '"01";"x\ny"', "", '"02";"b"'], [(2, 3), (5, 5)], [1, 4], 1),
        (['"01";"x\n\ny"', "", '"02";"b"'], [(1, 3), (5, 5)], [4], 2),
    ],
    ids=[
        "plain",
        "blank lines only",
        "a reject then a row on three lines",
        "both",
        "an empty line inside quotes is not a blank line",
    ],
)
def test_lines_are_placed_whatever_quirks_the_file_holds(
    tmp_path: Path,
    records: list[str],
    lines: list[tuple[int, int]],
    blank: list[int],
    continuation: int,
) -> None:
    """Blank and continuation lines are looked for only when the counts say they exist."""
    content = "".join(f"{record}\n" for record in records).encode("latin-1")
    zip_path = make_zip(tmp_path / "Cnaes.zip", content)
    member, result, _, placed = read_all(zip_path, tmp_path / "scratch")
    assert placed == lines
    assert result.blank_lines == blank
    assert result.continuation_lines == continuation
    assert member.stats.physical_lines == content.count(b"\n")


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1024 * 1024])
def test_blank_lines_are_found_across_chunk_boundaries_and_not_inside_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    monkeypatch.setattr("cnpj_assets.reader.member.CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "member.csv"
    path.write_bytes(b'\n"a";"x\n\ny ""q"" "\n\n"b";"c"\n\n')
    assert find_blank_lines(path) == [1, 5, 7]


def test_values_round_trip(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "Cnaes.zip", QUIRKY)
    _, _, rows, _ = read_all(zip_path, tmp_path / "scratch")
    by_code = {r["codigo"]: r["descricao"] for r in rows}
    assert by_code["0111301"] == "Cultivo de arroz ÇÃO"
    assert by_code["0111303"] == "nome com\nnova linha"
    assert by_code["0111306"] == "nulbyte"
    assert by_code["0111307"] == 'aspas "duplas" e ; ponto e vírgula'
    assert "0011308" in by_code


def test_simples_dates(tmp_path: Path) -> None:
    lines = [
        '"00000001";"S";"20210105";"00000000";"N";"0";""',
        '"00000002";"N";"2021221";"20210230";"S";"41001301";"20200101"',
    ]
    content = ("\n".join(lines) + "\n").encode("latin-1")
    zip_path = make_zip(tmp_path / "Simples.zip", b"", {"F.K03200$W.SIMPLES.CSV.D61012": content})
    _, result, rows, _ = read_all(zip_path, tmp_path / "scratch", table="simples")
    assert rows[0]["data_opcao_simples"] == datetime.date(2021, 1, 5)
    assert rows[0]["data_exclusao_simples"] is None
    assert rows[0]["data_opcao_mei"] is None and rows[0]["data_exclusao_mei"] is None
    assert rows[1]["data_opcao_simples"] is None  # 7 digits
    assert rows[1]["data_exclusao_simples"] is None  # 30 February
    assert rows[1]["data_opcao_mei"] is None  # year 4100
    assert rows[1]["data_exclusao_mei"] == datetime.date(2020, 1, 1)
    assert result.invalid_values["data_opcao_simples"] == 1
    assert result.invalid_values["data_exclusao_simples"] == 1
    assert result.invalid_values["data_opcao_mei"] == 1
    assert result.invalid_values["data_exclusao_mei"] == 0


def test_decimal_comma_and_zero_padded_codes(tmp_path: Path) -> None:
    lines = [
        '"00012345";"EMPRESA SÃO JOÃO LTDA";"2062";"49";"1061004829,23";"01";""',
        '"0ABC1234";"OUTRA";"2135";"50";"1.234,50";"00";""',
        '"00000003";"TERCEIRA";"2135";"50";"abc";"05";""',
    ]
    content = ("\n".join(lines) + "\n").encode("latin-1")
    zip_path = make_zip(
        tmp_path / "Empresas0.zip", b"", {"K3241.K03200Y0.D61012.EMPRECSV": content}
    )
    _, result, rows, _ = read_all(zip_path, tmp_path / "scratch", table="empresas")
    assert rows[0]["cnpj_basico"] == "00012345"
    assert rows[0]["razao_social"] == "EMPRESA SÃO JOÃO LTDA"
    assert rows[0]["capital_social"] == Decimal("1061004829.23")
    assert rows[0]["porte_empresa"] == "01"
    assert rows[1]["cnpj_basico"] == "0ABC1234"
    assert rows[1]["capital_social"] == Decimal("1234.50")
    assert rows[2]["capital_social"] is None
    assert result.invalid_values["capital_social"] == 1


@pytest.mark.parametrize("name", ["../evil.csv", "/etc/passwd", "a/../../b.csv", "C:\\x.csv"])
def test_hostile_member_names_are_refused(tmp_path: Path, name: str) -> None:
    zip_path = make_zip(tmp_path / "Cnaes.zip", b"", {name: b'"1";"a"\n'})
    with pytest.raises(MemberError, match="unsafe"):
        extract_member(zip_path, tmp_path / "scratch")
    assert not (tmp_path / "evil.csv").exists()


def test_broken_zips_are_clear_errors(tmp_path: Path) -> None:
    two = make_zip(tmp_path / "Two.zip", b"", {"a.CNAECSV": b"x", "b.CNAECSV": b"y"})
    with pytest.raises(MemberError, match="expected one CSV member, found 2"):
        extract_member(two, tmp_path / "scratch")
    empty = make_zip(tmp_path / "Empty.zip", b"", {})
    with pytest.raises(MemberError, match="empty"):
        extract_member(empty, tmp_path / "scratch")
    not_zip = tmp_path / "Cnaes.zip"
    not_zip.write_bytes(b"this is not a zip")
    with pytest.raises(MemberError, match="Cnaes.zip"):
        extract_member(not_zip, tmp_path / "scratch")
    good = make_zip(tmp_path / "Good.zip", QUIRKY * 200)
    truncated = tmp_path / "Truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MemberError, match="Truncated.zip"):
        extract_member(truncated, tmp_path / "scratch")


def _patch_central_directory(zip_path: Path, offset: int, value: int) -> None:
    """Overwrite a 4-byte field of the (single) central directory entry."""
    data = bytearray(zip_path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")
    data[entry + offset : entry + offset + 4] = value.to_bytes(4, "little")
    zip_path.write_bytes(bytes(data))


def test_inflated_members_are_checked_against_their_directory_entry(tmp_path: Path) -> None:
    content = QUIRKY * 200
    wrong_crc = make_zip(tmp_path / "Crc.zip", content)
    _patch_central_directory(wrong_crc, 16, zipfile.ZipFile(wrong_crc).infolist()[0].CRC ^ 1)
    with pytest.raises(MemberError, match="Crc.zip.*fails its CRC check"):
        extract_member(wrong_crc, tmp_path / "scratch")
    lying = make_zip(tmp_path / "Lying.zip", content)
    _patch_central_directory(lying, 24, len(content) // 2)  # declared uncompressed size
    with pytest.raises(MemberError, match="Lying.zip.*expands past its declared size"):
        extract_member(lying, tmp_path / "scratch")
    garbled = make_zip(tmp_path / "Garbled.zip", content)
    data = bytearray(garbled.read_bytes())
    data[60:80] = b"\xff" * 20  # inside the deflate stream, the directory intact
    garbled.write_bytes(bytes(data))
    with pytest.raises(MemberError, match="Garbled.zip: corrupt or truncated zip"):
        extract_member(garbled, tmp_path / "scratch")
    assert not list((tmp_path / "scratch").glob("*.csv")), "no partial member is left behind"


def test_stored_and_multi_chunk_members_extract_byte_for_byte_and_hash_the_whole_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"".join(
        b'"%07d";"Cultivo %d \xc7\xc3O"\n' % (i, i * 7919 % 10007) for i in range(20000)
    )
    stored = tmp_path / "Stored.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.comment = b"a comment after the central directory"
        archive.writestr(MEMBER, content)
    extracted = extract_member(stored, tmp_path / "a")
    assert extracted.path.read_bytes() == content
    assert extracted.zip_sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    monkeypatch.setattr("cnpj_assets.reader.member.CHUNK_BYTES", 4096)
    monkeypatch.setattr("cnpj_assets.reader.inflate.COMPRESSED_READ_BYTES", 1000)
    zip_path = make_zip(tmp_path / "Deflated.zip", content)
    deflated = extract_member(zip_path, tmp_path / "b")
    assert deflated.path.read_bytes() == content
    assert deflated.stats.physical_lines == 20000
    assert deflated.zip_sha256 == hashlib.sha256(zip_path.read_bytes()).hexdigest()
