"""The establishment as minha-receita's clients read it, from one row of cnpj_completo.

minha-receita's JSON is what most users of the registry's HTTP APIs already parse
(BrasilAPI proxies it), so the API answers in that shape: codes as integers, labels as
text, dates `YYYY-MM-DD` or null, S/N options as booleans or null, the partners under
`qsa`. One statement reads one row of `cnpj_completo`'s SELECT (everything is joined
there; its lookups read by index, see `view_statement`), so an answer is taken from one
snapshot and can never mix two releases: the published one through `cnpj_current`, or a
named release by its partition. `FIELDS` is the shape, in
minha-receita's order; it builds the answer and its OpenAPI schema alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cnpj_assets.lineage import CnpjQuery, parse_cnpj
from cnpj_assets.postgres import tables
from cnpj_assets.read.completo_view import view_statement
from cnpj_assets.releases.publication import CURRENT_SCHEMA
from cnpj_assets.specs import ESTABELECIMENTOS

Row = dict[str, Any]


def integer(value: str | None) -> int | None:
    """A code as minha-receita writes it: an integer, null when empty or not a number."""
    return int(value) if value and value.isdigit() else None


def flag(value: str | None) -> bool | None:
    """An S/N option: true, false, or null when the file gives neither."""
    return {"S": True, "N": False}.get(value or "")


def day(value: date | str | None) -> str | None:
    """A date as `YYYY-MM-DD` (jsonb holds them as that text already), or null."""
    return value.isoformat() if isinstance(value, date) else value


def number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def joined(first: str | None, second: str | None) -> str | None:
    """A DDD and its number as one text, as minha-receita writes phones; null if both empty."""
    return ((first or "") + (second or "")) or None


@dataclass(frozen=True)
class Field:
    """One key of the answer: its JSON type and how it is computed from a row."""

    name: str
    json_type: str  # integer, string, boolean, number, array
    value: Callable[[Row], Any]
    items: tuple[Field, ...] = ()  # the keys of an array's objects


def _code(name: str, column: str) -> Field:
    return Field(name, "integer", lambda row: integer(row[column]))


def _text(name: str, column: str) -> Field:
    return Field(name, "string", lambda row: row[column])


def _date(name: str, column: str) -> Field:
    return Field(name, "string", lambda row: day(row[column]))


def _flag(name: str, column: str) -> Field:
    return Field(name, "boolean", lambda row: flag(row[column]))


def _phone(name: str, ddd: str, phone: str) -> Field:
    return Field(name, "string", lambda row: joined(row[ddd], row[phone]))


def _objects(name: str, column: str, items: tuple[Field, ...]) -> Field:
    return Field(
        name,
        "array",
        lambda row: [{f.name: f.value(item) for f in items} for item in row[column] or []],
        items,
    )


SECONDARY_ACTIVITY = (_code("codigo", "codigo"), _text("descricao", "descricao"))
PARTNER = (
    _code("identificador_de_socio", "identificador_socio"),
    _text("nome_socio", "nome_socio_razao_social"),
    _text("cnpj_cpf_do_socio", "cpf_cnpj_socio"),
    _code("codigo_qualificacao_socio", "qualificacao_socio"),
    _text("qualificacao_socio", "qualificacao_socio_descricao"),
    _date("data_entrada_sociedade", "data_entrada_sociedade"),
    _code("codigo_pais", "pais"),
    _text("pais", "pais_descricao"),
    _text("cpf_representante_legal", "representante_legal"),
    _text("nome_representante_legal", "nome_do_representante"),
    _code("codigo_qualificacao_representante_legal", "qualificacao_representante_legal"),
    _text("qualificacao_representante_legal", "qualificacao_representante_legal_descricao"),
    _code("codigo_faixa_etaria", "faixa_etaria"),
    _text("faixa_etaria", "faixa_etaria_descricao"),
)
"""The keys of a `qsa` object, from one element of cnpj_completo's `socios` jsonb."""

FIELDS: tuple[Field, ...] = (
    _text("cnpj", "cnpj"),
    _code("identificador_matriz_filial", "identificador_matriz_filial"),
    _text("descricao_identificador_matriz_filial", "identificador_matriz_filial_descricao"),
    _text("nome_fantasia", "nome_fantasia"),
    _code("situacao_cadastral", "situacao_cadastral"),
    _text("descricao_situacao_cadastral", "situacao_cadastral_descricao"),
    _date("data_situacao_cadastral", "data_situacao_cadastral"),
    _code("motivo_situacao_cadastral", "motivo_situacao_cadastral"),
    _text("descricao_motivo_situacao_cadastral", "motivo_situacao_cadastral_descricao"),
    _text("nome_cidade_no_exterior", "nome_cidade_exterior"),
    _code("codigo_pais", "pais"),
    _text("pais", "pais_descricao"),
    _date("data_inicio_atividade", "data_inicio_atividade"),
    _code("cnae_fiscal", "cnae_fiscal_principal"),
    _text("cnae_fiscal_descricao", "cnae_fiscal_principal_descricao"),
    _text("descricao_tipo_de_logradouro", "tipo_logradouro"),
    _text("logradouro", "logradouro"),
    _text("numero", "numero"),
    _text("complemento", "complemento"),
    _text("bairro", "bairro"),
    _text("cep", "cep"),
    _text("uf", "uf"),
    _code("codigo_municipio", "municipio"),
    _text("municipio", "municipio_descricao"),
    _phone("ddd_telefone_1", "ddd_1", "telefone_1"),
    _phone("ddd_telefone_2", "ddd_2", "telefone_2"),
    _phone("ddd_fax", "ddd_fax", "fax"),
    _text("email", "correio_eletronico"),
    _text("situacao_especial", "situacao_especial"),
    _date("data_situacao_especial", "data_situacao_especial"),
    _flag("opcao_pelo_simples", "opcao_pelo_simples"),
    _date("data_opcao_pelo_simples", "data_opcao_simples"),
    _date("data_exclusao_do_simples", "data_exclusao_simples"),
    _flag("opcao_pelo_mei", "opcao_mei"),
    _date("data_opcao_pelo_mei", "data_opcao_mei"),
    _date("data_exclusao_do_mei", "data_exclusao_mei"),
    _text("razao_social", "razao_social"),
    _code("codigo_natureza_juridica", "natureza_juridica"),
    _text("natureza_juridica", "natureza_juridica_descricao"),
    _code("qualificacao_do_responsavel", "qualificacao_responsavel"),
    Field("capital_social", "number", lambda row: number(row["capital_social"])),
    _code("codigo_porte", "porte_empresa"),
    _text("porte", "porte_empresa_descricao"),
    _text("ente_federativo_responsavel", "ente_federativo_responsavel"),
    _objects("cnaes_secundarios", "cnaes_secundarias", SECONDARY_ACTIVITY),
    _objects("qsa", "socios", PARTNER),
)
"""The answer's keys in minha-receita's order (its `regime_tributario` is not loaded yet)."""


def document(row: Row) -> dict[str, Any]:
    """The establishment's JSON object from its cnpj_completo row."""
    return {f.name: f.value(row) for f in FIELDS}


@dataclass(frozen=True)
class Establishment:
    """An answer and the release it was read from (the API names it in a header)."""

    release: str
    document: dict[str, Any]


def _statement(release: str | None) -> sql.Composed:
    """cnpj_completo's SELECT for one establishment, its lookups read by their indexes:
    over `cnpj_current.estabelecimentos` for the published release, else the partition."""
    establishments = (
        sql.Identifier(CURRENT_SCHEMA, ESTABELECIMENTOS.name)
        if release is None
        else tables.qualified(ESTABELECIMENTOS.name)
    )
    named = sql.SQL("") if release is None else sql.SQL("e.release = %(release)s AND ")
    return sql.SQL(
        "{select} WHERE {named}e.cnpj_basico = %(basico)s AND e.cnpj_ordem = %(ordem)s "
        "AND e.cnpj_dv = %(dv)s ORDER BY e.{lineage} LIMIT 1"
    ).format(
        select=view_statement(establishments, point=True),
        named=named,
        lineage=sql.Identifier(tables.LINEAGE_COLUMN),
    )


def find_establishment(
    connection: psycopg.Connection, query: CnpjQuery, release: str | None = None
) -> Establishment | None:
    """The establishment in the published release (or `release`), None if it has none.

    A source that repeats an establishment keeps its first row, as the key's build does.
    """
    params = {"release": release, "basico": query.basico, "ordem": query.ordem, "dv": query.dv}
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(_statement(release), params).fetchone()
    return None if row is None else Establishment(row["release"], document(row))


def find_establishments(
    connection: psycopg.Connection, release: str, cnpjs: list[str]
) -> list[dict[str, Any]]:
    """The answers for a page of CNPJs of one release (a search's), in the page's order.

    One statement per CNPJ, the lookup's: a statement over a list of keys lets the
    planner join the companies and partners of the whole release before narrowing.
    Run them in one transaction to read one snapshot.
    """
    found = (find_establishment(connection, parse_cnpj(c), release) for c in cnpjs)
    return [f.document for f in found if f is not None]
