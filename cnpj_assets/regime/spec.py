"""The table `cnpj.regime_tributario` and the zips of the folder that feed it.

The folder holds one zip per regime (Lucro Real, Lucro Presumido, Lucro Arbitrado,
Imunes e Isentas), sometimes split in numbered parts and written in varying case; all
of them load into one table whose regime is the row's `forma_de_tributacao`. The CSVs
differ from the monthly ones: comma-separated, a header row, punctuated CNPJs.
"""

from __future__ import annotations

import re

from cnpj_assets.specs import (
    ColumnKind,
    ColumnSpec,
    CsvFormat,
    FullCnpj,
    TableSpec,
)

FOLDER = "regime_tributario"
REGIMES = ("Imunes e Isentas", "Lucro Arbitrado", "Lucro Presumido", "Lucro Real")
"""The regimes the folder has one zip (or several numbered parts) for."""

REGIME_TRIBUTARIO = TableSpec(
    name="regime_tributario",
    zip_base="",
    member_suffix=".csv",
    member_template="{d}.csv",
    columns=(
        ColumnSpec("ano", ColumnKind.INTEGER, "calendar year of the bookkeeping (ECF)"),
        ColumnSpec("cnpj", ColumnKind.CNPJ, "the 14-character CNPJ, unpunctuated"),
        ColumnSpec(
            "cnpj_basico",
            ColumnKind.CODE,
            "first 8 characters of the CNPJ, to join companies",
            width=8,
            prefix_of="cnpj",
        ),
        ColumnSpec(
            "cnpj_da_scp", ColumnKind.CNPJ, "CNPJ of the SCP (silent partnership); NULL if none"
        ),
        ColumnSpec("forma_de_tributacao", ColumnKind.TEXT, "the regime declared for the year"),
        ColumnSpec(
            "quantidade_de_escrituracoes", ColumnKind.INTEGER, "bookkeepings filed for the year"
        ),
    ),
    key=None,
    index_columns=("cnpj",),
    description=(
        "Tax regime declared per company and year (Lucro Real, Presumido, Arbitrado, Imunes "
        "e Isentas), from the share's regime_tributario folder; partitioned by snapshot."
    ),
    file_count=len(REGIMES),
    notes="A company has one row per year and regime (and per SCP); no key is built.",
    full_cnpj=FullCnpj(("cnpj",)),
    csv=CsvFormat(delimiter=",", header=True),
    monthly=False,
)

_SEPARATORS = r"[ _-]*"
_PATTERNS = {
    regime: re.compile(
        _SEPARATORS.join(re.escape(word) for word in regime.split())
        + rf"{_SEPARATORS}(?:\(?[0-9]+\)?)?\.zip",
        flags=re.IGNORECASE,
    )
    for regime in REGIMES
}


def regime_of(zip_name: str) -> str | None:
    """The regime of a zip, by its name in any case, numbered or not (`Lucro Presumido 1.zip`)."""
    for regime, pattern in _PATTERNS.items():
        if pattern.fullmatch(zip_name.strip()):
            return regime
    return None
