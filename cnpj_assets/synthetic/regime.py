"""A synthetic regime_tributario folder: the share's layout, its CSV format, its variants.

Companies come from the same universe as a fake release of the same seed and rows, so
the head offices' regimes show up in that release's cnpj_completo. Every row is
`ano,cnpj,cnpj_da_scp,forma_de_tributacao,quantidade_de_escrituracoes` with a
punctuated CNPJ and `0` for no SCP; Lucro Presumido is split in numbered parts, as some
listings show it, and the header's case is a choice.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cnpj_assets.regime.landing import snapshot_folder
from cnpj_assets.regime.spec import REGIME_TRIBUTARIO, REGIMES
from cnpj_assets.synthetic.companies import Companies

YEARS = tuple(range(2018, 2024))  # the ECF years a 2025 folder covers
SHARES = {  # share of the rows: Lucro Real's CSV ~1.7 M lines, Arbitrado a few thousand
    "Imunes e Isentas": 0.148,
    "Lucro Arbitrado": 0.002,
    "Lucro Presumido": 0.55,
    "Lucro Real": 0.30,
}
FORMS = {
    "Imunes e Isentas": ("IMUNE DO IRPJ", "ISENTA DO IRPJ"),
    "Lucro Arbitrado": ("LUCRO ARBITRADO",),
    "Lucro Presumido": ("LUCRO PRESUMIDO",),
    "Lucro Real": ("LUCRO REAL",),
}
SCP_SHARE = 0.01  # rows filed for a silent partnership (cnpj_da_scp given)
LINES_PER_WRITE = 50_000


@dataclass(frozen=True)
class RegimeFolder:
    """What was written: the folder, each zip with its rows."""

    folder: Path
    zips: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.zips.values())


def punctuated(cnpj: str) -> str:
    """12.345.678/0001-95, the way the folder writes CNPJs (alphanumeric ones too)."""
    return f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"


def zip_names(split_presumido: int) -> dict[str, list[str]]:
    """Each regime's zip names; Lucro Presumido in `split_presumido` numbered parts if > 1."""
    names = {regime: [f"{regime}.zip"] for regime in REGIMES}
    if split_presumido > 1:
        names["Lucro Presumido"] = [
            f"Lucro Presumido {n}.zip" for n in range(1, split_presumido + 1)
        ]
    return names


def write_regime_folder(
    out_dir: Path,
    snapshot: str,
    rows: int,
    companies: int,
    seed: int = 0,
    split_presumido: int = 2,
    upper_header: bool = False,
) -> RegimeFolder:
    """Write `rows` rows over the first `companies` companies into
    OUT/regime_tributario/SNAPSHOT/."""
    folder = snapshot_folder(out_dir, snapshot)
    folder.mkdir(parents=True, exist_ok=True)
    universe = Companies(seed, companies, 0)
    rng = random.Random(f"{seed}/regime/{snapshot}")
    header = ",".join(c.name for c in REGIME_TRIBUTARIO.file_columns)
    header = header.upper() if upper_header else header
    written: dict[str, int] = {}
    for regime, names in zip_names(split_presumido).items():
        regime_rows = max(1, round(rows * SHARES[regime]))
        for part, name in enumerate(names):
            part_rows = regime_rows // len(names) + (part < regime_rows % len(names))
            lines = (_line(universe, rng, companies, regime) for _ in range(part_rows))
            _write_zip(folder / name, Path(name).with_suffix(".csv").name, header, lines)
            written[name] = part_rows
    return RegimeFolder(folder, written)


def _line(universe: Companies, rng: random.Random, companies: int, regime: str) -> str:
    company = universe.head_office_cnpj(rng.randrange(companies))
    scp = "0"
    if rng.random() < SCP_SHARE:
        scp = punctuated(universe.head_office_cnpj(rng.randrange(companies)))
    form = rng.choice(FORMS[regime])
    count = 1 if rng.random() < 0.97 else 2
    return f"{rng.choice(YEARS)},{punctuated(company)},{scp},{form},{count}"


def _write_zip(path: Path, member: str, header: str, lines: Iterable[str]) -> None:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open(member, "w") as sink,
    ):
        sink.write(header.encode() + b"\n")
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == LINES_PER_WRITE:
                sink.write(("\n".join(chunk) + "\n").encode("latin-1"))
                chunk = []
        if chunk:
            sink.write(("\n".join(chunk) + "\n").encode("latin-1"))
