"""An independent reading of a zip with Python's csv module: what a load must produce.

The tests compare the database with this, not with the loader's own counts, so a
loader that drops or invents rows cannot agree with itself and pass.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cnpj_assets.specs import TABLES


@dataclass
class OracleFile:
    good: list[tuple[int, list[str]]] = field(default_factory=list)  # (start line, fields)
    bad: list[int] = field(default_factory=list)  # start lines of wrong-width records


def read_zip(zip_path: Path, table: str) -> OracleFile:
    width = len(TABLES[table].columns)
    with zipfile.ZipFile(zip_path) as archive:
        (info,) = archive.infolist()
        text = archive.read(info).decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    result = OracleFile()
    previous_end = 0
    for record in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not record:
            continue
        if len(record) == width + 1 and record[-1] == "":
            record = record[:-1]  # DuckDB reads a trailing empty field as a trailing delimiter
        if len(record) == width:
            result.good.append((start, record))
        else:
            result.bad.append(start)
    return result


def read_table(landing: Path, release: str, table: str) -> dict[str, OracleFile]:
    return {name: read_zip(landing / release / name, table) for name in TABLES[table].zip_names()}
