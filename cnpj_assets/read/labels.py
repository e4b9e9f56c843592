"""The meaning of the codes the Receita's layout defines but ships no lookup file for.

Source: "Metadados do CNPJ", the layout document the Receita publishes beside the open
data files: its fields of ESTABELECIMENTOS, EMPRESAS, SOCIOS and SIMPLES. Labels are
written as the layout writes them (accents kept); the age brackets follow its ranges in
the wording minha-receita's clients already read. This is the single source: the
reference tables in PostgreSQL, the views' `<column>_descricao` columns, the CLI and the
API all read these tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Receita Federal, Metadados do CNPJ (layout dos dados abertos do CNPJ)"


@dataclass(frozen=True)
class LabelSet:
    """The labels of one code column: which table and column carry the code, and its codes."""

    domain: str  # the reference table's name and the label column's prefix
    tables: tuple[tuple[str, str], ...]  # (table, column) pairs whose codes these label
    labels: tuple[tuple[str, str], ...]  # (code, label), codes as the files write them
    source: str = SOURCE

    def label(self, code: str | None) -> str | None:
        """The code's label; None for an unknown or missing code (never an error)."""
        return dict(self.labels).get(code or "")


SITUACAO_CADASTRAL = LabelSet(
    "situacao_cadastral",
    (("estabelecimentos", "situacao_cadastral"),),
    (("01", "NULA"), ("02", "ATIVA"), ("03", "SUSPENSA"), ("04", "INAPTA"), ("08", "BAIXADA")),
)
PORTE_EMPRESA = LabelSet(
    "porte_empresa",
    (("empresas", "porte_empresa"),),
    (
        ("00", "NÃO INFORMADO"),
        ("01", "MICRO EMPRESA"),
        ("03", "EMPRESA DE PEQUENO PORTE"),
        ("05", "DEMAIS"),
    ),
)
IDENTIFICADOR_MATRIZ_FILIAL = LabelSet(
    "identificador_matriz_filial",
    (("estabelecimentos", "identificador_matriz_filial"),),
    (("1", "MATRIZ"), ("2", "FILIAL")),
)
IDENTIFICADOR_SOCIO = LabelSet(
    "identificador_socio",
    (("socios", "identificador_socio"),),
    (("1", "PESSOA JURÍDICA"), ("2", "PESSOA FÍSICA"), ("3", "ESTRANGEIRO")),
)
FAIXA_ETARIA = LabelSet(
    "faixa_etaria",
    (("socios", "faixa_etaria"),),
    (
        ("0", "Não se aplica"),
        ("1", "Entre 0 a 12 anos"),
        ("2", "Entre 13 a 20 anos"),
        ("3", "Entre 21 a 30 anos"),
        ("4", "Entre 31 a 40 anos"),
        ("5", "Entre 41 a 50 anos"),
        ("6", "Entre 51 a 60 anos"),
        ("7", "Entre 61 a 70 anos"),
        ("8", "Entre 71 a 80 anos"),
        ("9", "Maiores de 80 anos"),
    ),
)
OPCAO = LabelSet(
    "opcao",
    (("simples", "opcao_pelo_simples"), ("simples", "opcao_mei")),
    (("S", "SIM"), ("N", "NÃO"), ("", "OUTROS")),
)

LABEL_SETS: tuple[LabelSet, ...] = (
    SITUACAO_CADASTRAL,
    PORTE_EMPRESA,
    IDENTIFICADOR_MATRIZ_FILIAL,
    IDENTIFICADOR_SOCIO,
    FAIXA_ETARIA,
    OPCAO,
)
"""Every label set; a code column appears in exactly one of them."""


def label_set_for(table: str, column: str) -> LabelSet | None:
    """The labels of a table's code column, if the layout defines them."""
    for label_set in LABEL_SETS:
        if (table, column) in label_set.tables:
            return label_set
    return None
