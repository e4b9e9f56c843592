"""The CNPJ CSV dialect as written by the Receita Federal: every field quoted, quotes doubled.

Normal synthetic records are built as ready quoted strings for speed; these helpers are
the slow, exact path for lookups and for the records a quirk rewrites.
"""

from __future__ import annotations

from collections.abc import Sequence

DELIMITER = ";"
QUOTE = '"'
ENCODING = "latin-1"


def join_record(fields: Sequence[str]) -> str:
    """One record without its line ending: each field quoted, a quote inside doubled."""
    return DELIMITER.join(f'"{value.replace(QUOTE, QUOTE * 2)}"' for value in fields)


def split_record(record: str) -> list[str]:
    """The fields of a record built from quote-free values (what the value pools guarantee).

    Splitting on the `";"` separator is exact only when no field holds a quote, which is
    why quirks are applied to freshly generated records and never to quirk output.
    """
    if not (record.startswith(QUOTE) and record.endswith(QUOTE)) or record.count(QUOTE) % 2:
        raise ValueError(f"not a fully quoted record: {record!r}")
    return record[1:-1].split('";"')
