"""The real-world quirks of the CNPJ files, each planted at a known place.

Every quirk reported in real releases (cnpj-layout.md) is declared once in QUIRKS with
the fact file it goes to. Record quirks are spread evenly over the companies of their
file and rewrite or add records of one company; the file writer reports the physical
line each lands on. Quirks keep keys intact: a field quirk never touches a key column,
a rejected record is an extra one (so no company loses its row), and the exact
duplicate is the only record that repeats a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnpj_assets.cnpj_number import check_digits
from cnpj_assets.specs import TableSpec
from cnpj_assets.synthetic.csvformat import join_record, split_record

LOADED = "loaded"
REJECTED = "rejected"
BLANK_LAST_LINE = "blank_last_line"
DUPLICATE_ROW = "duplicate_row"
TOO_FEW_COLUMNS = "too_few_columns"
TOO_MANY_COLUMNS = "too_many_columns"


@dataclass(frozen=True)
class Quirk:
    """One planted quirk. `value` is the field's logical value (quotes not yet doubled)."""

    kind: str
    table: str
    file_number: int
    column: str | None = None
    value: str | None = None
    expected: str = LOADED  # whether a loader must keep the record or reject it


QUIRKS: tuple[Quirk, ...] = (
    Quirk("doubled_quotes", "empresas", 1, "razao_social", 'COMERCIAL "O BARATEIRO" LTDA'),
    Quirk("semicolon_in_field", "empresas", 1, "razao_social", "PÃO; LEITE & CIA LTDA"),
    Quirk(DUPLICATE_ROW, "empresas", 1),
    Quirk(BLANK_LAST_LINE, "empresas", 9),
    Quirk("nul_byte", "estabelecimentos", 2, "nome_fantasia", "MERCADO\x00CENTRAL"),
    Quirk("embedded_newline", "estabelecimentos", 2, "nome_fantasia", "BAR DO ZÉ\nFILIAL CENTRO"),
    Quirk("doubled_quotes", "estabelecimentos", 2, "nome_fantasia", 'BAR "DO ZÉ"'),
    Quirk("date_7_digits", "estabelecimentos", 2, "data_inicio_atividade", "2021221"),
    Quirk(TOO_FEW_COLUMNS, "estabelecimentos", 2, expected=REJECTED),
    Quirk("doubled_quotes", "estabelecimentos", 3, "nome_fantasia", 'TV 29"'),
    Quirk("doubled_quotes", "estabelecimentos", 3, "logradouro", 'DOUTOR JOSÉ "ZECA" MOREIRA'),
    Quirk("semicolon_in_field", "estabelecimentos", 3, "complemento", "SALA 3; BLOCO B"),
    Quirk("date_year_0202", "estabelecimentos", 3, "data_situacao_cadastral", "02020315"),
    Quirk("cep_7_digits", "estabelecimentos", 3, "cep", "1310100"),
    Quirk(BLANK_LAST_LINE, "estabelecimentos", 3),
    Quirk("doubled_quotes", "socios", 4, "nome_socio_razao_social", 'MARIA "NENÊ" DA SILVA'),
    Quirk(TOO_MANY_COLUMNS, "socios", 4, expected=REJECTED),
    Quirk("date_year_4100", "simples", 0, "data_exclusao_simples", "41001231"),
)
"""All quirks of a release written with quirks=True, in file order within each file."""

MIN_ROWS = 100  # below this a file may have fewer companies than quirks to spread
SPARE_ORDEM = "0901"  # a branch number beyond any the generator gives


def quirks_of_file(table: str, file_number: int) -> tuple[Quirk, ...]:
    return tuple(q for q in QUIRKS if q.table == table and q.file_number == file_number)


def place(quirks: tuple[Quirk, ...], companies: range) -> dict[int, Quirk]:
    """Company index -> record quirk, spread evenly so each file's quirks sit apart."""
    record_quirks = [q for q in quirks if q.kind != BLANK_LAST_LINE]
    step = len(companies) // (len(record_quirks) + 1)
    if record_quirks and step == 0:
        raise ValueError(f"{len(companies)} companies cannot carry {len(record_quirks)} quirks")
    return {companies[step * (k + 1)]: quirk for k, quirk in enumerate(record_quirks)}


@dataclass(frozen=True)
class PlantedRecord:
    """A record to write; `fields` is set when it carries the quirk (for the report)."""

    text: str
    fields: list[str] | None = None


def _spare_copy(spec: TableSpec, record: str) -> list[str]:
    """A copy of a record that repeats no key: a new branch number where the table has one."""
    fields = split_record(record)
    if "cnpj_ordem" in spec.column_names:
        columns = spec.column_names
        fields[columns.index("cnpj_ordem")] = SPARE_ORDEM
        fields[columns.index("cnpj_dv")] = check_digits(fields[0] + SPARE_ORDEM)
        fields[columns.index("identificador_matriz_filial")] = "2"
    return fields


def apply(quirk: Quirk, spec: TableSpec, records: list[str]) -> list[PlantedRecord]:
    """The records of one company once `quirk` is planted in (or after) its first record."""
    first, rest = records[0], [PlantedRecord(text) for text in records[1:]]
    if quirk.kind == DUPLICATE_ROW:
        fields = split_record(first)
        return [PlantedRecord(first, fields), PlantedRecord(first, fields), *rest]
    if quirk.kind in (TOO_FEW_COLUMNS, TOO_MANY_COLUMNS):
        fields = _spare_copy(spec, first)
        fields = fields[:-1] if quirk.kind == TOO_FEW_COLUMNS else [*fields, "CAMPO EXTRA"]
        return [PlantedRecord(first), *rest, PlantedRecord(join_record(fields), fields)]
    if quirk.column is None or quirk.value is None:
        raise ValueError(f"quirk {quirk.kind} needs a column and a value")
    fields = split_record(first)
    fields[spec.column_names.index(quirk.column)] = quirk.value
    return [PlantedRecord(join_record(fields), fields), *rest]
