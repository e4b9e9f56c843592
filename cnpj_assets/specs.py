"""Declarative specs of the ten CNPJ tables: the single source of truth.

The reader, the PostgreSQL DDL, the Dagster column schema and the synthetic release
generator all read these specs, so a column added or retyped here changes all of them
together. Column order is the order of the fields in the Receita Federal CSV files.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class ColumnKind(enum.Enum):
    """How a raw CSV field is typed on its way to PostgreSQL."""

    CODE = "code"  # zero-padded or alphanumeric code: text, zeros kept
    TEXT = "text"  # free text: names, addresses; may carry accents, quotes, newlines
    DATE = "date"  # YYYYMMDD; 0, 00000000 or empty mean NULL
    DECIMAL = "decimal"  # decimal comma, optional '.' thousands separator
    INTEGER = "integer"  # plain digits (a year, a count)
    CNPJ = "cnpj"  # a full CNPJ, punctuated or not: stored as its 14 characters; 0 means NULL

    @property
    def pg_type(self) -> str:
        """The PostgreSQL type the column is stored as."""
        return {
            "code": "text",
            "text": "text",
            "date": "date",
            "decimal": "numeric(20,2)",
            "integer": "integer",
            "cnpj": "text",
        }[self.value]

    @property
    def is_code(self) -> bool:
        """Compared byte-wise (COLLATE "C"), zeros kept."""
        return self in (ColumnKind.CODE, ColumnKind.CNPJ)


@dataclass(frozen=True)
class ColumnSpec:
    """One field of a CNPJ CSV file."""

    name: str
    kind: ColumnKind
    description: str = ""
    width: int | None = None  # fixed width of a zero-padded code, where the layout fixes it
    references: str | None = None  # the table whose key this column points at
    prefix_of: str | None = None  # not in the file: the first `width` characters of that column


@dataclass(frozen=True)
class FullCnpj:
    """Where a table holds full 14-character CNPJs: columns to join, and which rows hold one."""

    columns: tuple[str, ...]  # concatenated in this order
    only_when: tuple[str, str] | None = None  # (column, value): the rows that hold a CNPJ


@dataclass(frozen=True)
class CsvFormat:
    """How a table's files are written: the monthly CNPJ files have no header and `;`."""

    delimiter: str = ";"
    header: bool = False  # a first line naming the file's columns (in any case)


@dataclass(frozen=True)
class TableSpec:
    """One CNPJ table: where its files are and what their columns mean."""

    name: str
    zip_base: str  # zip file name without number and extension, e.g. Empresas
    member_suffix: str  # suffix of the CSV member inside the zip, e.g. .EMPRECSV
    member_template: str  # real member name; {n} file number, {d} yMMdd extraction date
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] | None  # natural key, where the data has one
    index_columns: tuple[str, ...]  # what lineage and joins look rows up by
    description: str
    file_count: int  # how many zips a release has for this table
    is_lookup: bool = False
    notes: str = ""
    full_cnpj: FullCnpj | None = None  # whose check digits the quality checks verify
    csv: CsvFormat = CsvFormat()
    monthly: bool = True  # part of the monthly release (its drift guard and publication)
    _by_name: dict[str, ColumnSpec] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({column.name: column for column in self.columns})

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def file_columns(self) -> tuple[ColumnSpec, ...]:
        """The columns the files hold, in their order (the others are computed from them)."""
        return tuple(column for column in self.columns if column.prefix_of is None)

    def column(self, name: str) -> ColumnSpec:
        return self._by_name[name]

    def zip_names(self) -> tuple[str, ...]:
        """The zip file names of this table in a complete release."""
        if self.file_count == 1:
            return (f"{self.zip_base}.zip",)
        return tuple(f"{self.zip_base}{n}.zip" for n in range(self.file_count))

    def matches_zip(self, zip_name: str) -> bool:
        number = "[0-9]" if self.file_count > 1 else ""
        pattern = rf"{re.escape(self.zip_base)}{number}\.zip"
        return re.fullmatch(pattern, zip_name, flags=re.IGNORECASE) is not None

    def member_name(self, file_number: int, extraction_date: str) -> str:
        """The real member name of file `file_number`; `extraction_date` is yMMdd (60613)."""
        return self.member_template.format(n=file_number, d=extraction_date)

    def matches_member(self, member_name: str) -> bool:
        """Whether a CSV member carries this table's suffix (alone or before .DyMMdd)."""
        upper, suffix = member_name.upper(), self.member_suffix.upper()
        return upper.endswith(suffix) or f"{suffix}.D" in upper

    @property
    def referenced_lookups(self) -> tuple[str, ...]:
        """Lookup tables this one points at, in column order, without repeats."""
        return tuple(t for t in self.referenced_tables if TABLES[t].is_lookup)

    @property
    def lookup_columns(self) -> tuple[ColumnSpec, ...]:
        """Code columns whose codes a lookup table of the release describes."""
        return tuple(c for c in self.columns if c.references and TABLES[c.references].is_lookup)

    @property
    def referenced_tables(self) -> tuple[str, ...]:
        """Tables this one points at, in column order, without repeats."""
        seen: dict[str, None] = {}
        for column in self.columns:
            if column.references and column.references != self.name:
                seen[column.references] = None
        return tuple(seen)


def _code(
    name: str, width: int | None = None, references: str | None = None, description: str = ""
) -> ColumnSpec:
    return ColumnSpec(name, ColumnKind.CODE, description, width, references)


def _text(name: str, description: str = "") -> ColumnSpec:
    return ColumnSpec(name, ColumnKind.TEXT, description)


def _date(name: str, description: str = "") -> ColumnSpec:
    return ColumnSpec(name, ColumnKind.DATE, description)


def _lookup(name: str, zip_base: str, member_suffix: str, description: str) -> TableSpec:
    return TableSpec(
        name=name,
        zip_base=zip_base,
        member_suffix=member_suffix,
        member_template=f"F.K03200$Z.D{{d}}{member_suffix}",
        columns=(_code("codigo", description="code"), _text("descricao", "description")),
        key=("codigo",),
        index_columns=("codigo",),
        description=description,
        file_count=1,
        is_lookup=True,
    )


EMPRESAS = TableSpec(
    name="empresas",
    zip_base="Empresas",
    member_suffix=".EMPRECSV",
    member_template="K3241.K03200Y{n}.D{d}.EMPRECSV",
    columns=(
        _code("cnpj_basico", 8, "empresas", "first 8 characters of the CNPJ"),
        _text("razao_social", "legal name"),
        _code("natureza_juridica", 4, "naturezas", "legal nature code"),
        _code(
            "qualificacao_responsavel", 2, "qualificacoes", "qualification of the person in charge"
        ),
        ColumnSpec("capital_social", ColumnKind.DECIMAL, "share capital in BRL"),
        _code("porte_empresa", 2, None, "size: 00 n/a, 01 micro, 03 small, 05 other"),
        _text("ente_federativo_responsavel", "federative entity, for public bodies"),
    ),
    key=("cnpj_basico",),
    index_columns=("cnpj_basico",),
    description="Companies: one row per CNPJ base (8 characters).",
    file_count=10,
)

ESTABELECIMENTOS = TableSpec(
    name="estabelecimentos",
    zip_base="Estabelecimentos",
    member_suffix=".ESTABELE",
    member_template="K3241.K03200Y{n}.D{d}.ESTABELE",
    columns=(
        _code("cnpj_basico", 8, "empresas", "first 8 characters of the CNPJ"),
        _code("cnpj_ordem", 4, None, "establishment number"),
        _code("cnpj_dv", 2, None, "check digits"),
        _code("identificador_matriz_filial", 1, None, "1 head office, 2 branch"),
        _text("nome_fantasia", "trade name"),
        _code("situacao_cadastral", 2, None, "registration status"),
        _date("data_situacao_cadastral"),
        _code("motivo_situacao_cadastral", 2, "motivos", "reason of the status"),
        _text("nome_cidade_exterior", "city abroad"),
        _code("pais", 3, "paises", "country code"),
        _date("data_inicio_atividade"),
        _code("cnae_fiscal_principal", 7, "cnaes", "main activity (CNAE)"),
        _text("cnae_fiscal_secundaria", "comma-separated secondary CNAE codes"),
        _text("tipo_logradouro"),
        _text("logradouro"),
        _text("numero"),
        _text("complemento"),
        _text("bairro"),
        _code("cep", 8, None, "postal code"),
        _code("uf", 2, None, "state, EX abroad"),
        _code("municipio", 4, "municipios", "RFB/SIAFI municipality code"),
        _code("ddd_1", None),
        _code("telefone_1", None),
        _code("ddd_2", None),
        _code("telefone_2", None),
        _code("ddd_fax", None),
        _code("fax", None),
        _text("correio_eletronico", "e-mail"),
        _text("situacao_especial"),
        _date("data_situacao_especial"),
    ),
    key=("cnpj_basico", "cnpj_ordem", "cnpj_dv"),
    index_columns=("cnpj_basico", "cnpj_ordem", "cnpj_dv"),
    description="Establishments: one row per full 14-character CNPJ.",
    file_count=10,
    full_cnpj=FullCnpj(("cnpj_basico", "cnpj_ordem", "cnpj_dv")),
)

SOCIOS = TableSpec(
    name="socios",
    zip_base="Socios",
    member_suffix=".SOCIOCSV",
    member_template="K3241.K03200Y{n}.D{d}.SOCIOCSV",
    columns=(
        _code("cnpj_basico", 8, "empresas", "first 8 characters of the CNPJ"),
        _code("identificador_socio", 1, None, "1 company, 2 person, 3 foreigner"),
        _text("nome_socio_razao_social", "partner name"),
        _code("cpf_cnpj_socio", None, None, "masked CPF or CNPJ of the partner"),
        _code("qualificacao_socio", 2, "qualificacoes"),
        _date("data_entrada_sociedade"),
        _code("pais", 3, "paises"),
        _code("representante_legal", None, None, "masked CPF of the legal representative"),
        _text("nome_do_representante"),
        _code("qualificacao_representante_legal", 2, "qualificacoes"),
        _code("faixa_etaria", 1, None, "age bracket 0-9"),
    ),
    key=None,
    index_columns=("cnpj_basico",),
    description="Partners. No natural key: two partners of one company can share a masked CPF.",
    file_count=10,
    notes="(cnpj_basico, cpf_cnpj_socio) is not unique in real releases; no key is built.",
    full_cnpj=FullCnpj(("cpf_cnpj_socio",), only_when=("identificador_socio", "1")),
)

SIMPLES = TableSpec(
    name="simples",
    zip_base="Simples",
    member_suffix=".SIMPLES.CSV",
    member_template="F.K03200$W.SIMPLES.CSV.D{d}",
    columns=(
        _code("cnpj_basico", 8, "empresas", "first 8 characters of the CNPJ"),
        _code("opcao_pelo_simples", 1, None, "S or N"),
        _date("data_opcao_simples"),
        _date("data_exclusao_simples"),
        _code("opcao_mei", 1, None, "S or N"),
        _date("data_opcao_mei"),
        _date("data_exclusao_mei"),
    ),
    key=("cnpj_basico",),
    index_columns=("cnpj_basico",),
    description="Simples Nacional and MEI tax regime options per company.",
    file_count=1,
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _lookup("cnaes", "Cnaes", ".CNAECSV", "Economic activity codes (CNAE)."),
        _lookup("motivos", "Motivos", ".MOTICSV", "Reasons of registration status."),
        _lookup("municipios", "Municipios", ".MUNICCSV", "Municipalities (RFB/SIAFI codes)."),
        _lookup("naturezas", "Naturezas", ".NATJUCSV", "Legal natures."),
        _lookup("paises", "Paises", ".PAISCSV", "Countries."),
        _lookup("qualificacoes", "Qualificacoes", ".QUALSCSV", "Partner qualifications."),
        EMPRESAS,
        ESTABELECIMENTOS,
        SOCIOS,
        SIMPLES,
    )
}
"""All ten tables, lookups first so that iterating loads referenced tables first."""


def derived_table(
    name: str, description: str, key: tuple[str, ...] | None, index_columns: tuple[str, ...]
) -> TableSpec:
    """A table built in PostgreSQL from the loaded ones (no files, no CSV columns): its
    identity for the child, index and swap helpers of postgres.tables."""
    return TableSpec(
        name=name,
        zip_base="",
        member_suffix="",
        member_template="",
        columns=(),
        key=key,
        index_columns=index_columns,
        description=description,
        file_count=0,
    )


def table_for_zip(zip_name: str) -> TableSpec | None:
    """The table a zip belongs to, by its file name (mirrors rename members, not zips)."""
    for spec in TABLES.values():
        if spec.matches_zip(zip_name):
            return spec
    return None


def table_for_member(member_name: str) -> TableSpec | None:
    """The table a CSV member belongs to, by its suffix: the fallback after the zip name."""
    for spec in TABLES.values():
        if spec.matches_member(member_name):
            return spec
    return None
