"""Writes docs/tables.md, the schema reference, from the table specs.

The columns, types, keys and descriptions come from `cnpj_assets.specs` and the column
list of `cnpj_completo`, so the page cannot drift from what a load creates; a test fails
when the committed page differs from what this script writes.

    python docs/schema_reference.py            # rewrite docs/tables.md
    python docs/schema_reference.py --check    # exit 1 if docs/tables.md is stale
"""

import argparse
import sys
from pathlib import Path

from cnpj_assets.postgres.tables import LINEAGE_COLUMN, SCHEMA
from cnpj_assets.read.completo_view import COLUMNS, COMPLETO
from cnpj_assets.specs import TABLES, ColumnKind, TableSpec

PAGE = Path(__file__).with_name("tables.md")

INTRO = """# What lands in PostgreSQL

<!-- Written by docs/schema_reference.py from the table specs: edit the script, not this page. -->

- Schema `cnpj`: one parent per table (`empresas`, `estabelecimentos`, `socios`,
  `simples`, `cnaes`, `motivos`, `municipios`, `naturezas`, `paises`, `qualificacoes`),
  `PARTITION BY LIST (release)`, one child per release (`cnpj.empresas_2026_10`). Codes
  are text and keep their zeros (alphanumeric CNPJs included), dates are `date`,
  `capital_social` is `numeric`. Every row has `_subbatch_id`, the id of the audit row of
  the COPY that wrote it.
- A load fills a fresh, unattached child, builds the key and indexes after the COPY,
  then detaches and drops the release's old child and attaches the new one in one
  transaction: a re-run replaces a release exactly, readers never see half a table, and
  a failed load leaves the previous data as it was.
- Keys: empresas `cnpj_basico`, estabelecimentos `(cnpj_basico, cnpj_ordem, cnpj_dv)`,
  simples `cnpj_basico`, lookups `codigo`, built as unique indexes. **socios has no key**:
  two partners of one company can share a masked CPF, so it gets a plain index on
  `cnpj_basico`. When a release violates a key (real releases repeat records), no row is
  dropped: the index is built non-unique and the materialization reports
  `duplicate_keys`.
- Schema `cnpj_audit`: `table_load` (Dagster run id, partition, asset key) ->
  `file_load` (zip, member, sha256, sizes, lines) -> `batch_load` -> `subbatch_load`
  (first and last source line), each RUNNING while open and COMPLETED or FAILED (with the
  error) when closed, with rows, bytes, rejects and seconds rolled up; `rejected_row`
  keeps every refused record with its file, line, raw text and reason.
- Reading them: the layout's code labels (`cnpj.labels`, and `<code>_descricao` columns
  in `cnpj_completo`) and the secondary activities as rows (`cnpj.cnaes_secundarias`)
  are described, with SQL examples, in [Reading the data](reading.md).

## Reading the files

DuckDB reads each member with every column as text (latin-1 by default; the encoding is
a setting), then types in SQL: `00000000`, `0` and empty dates are NULL; impossible
dates (7 digits, 30 February, years outside 1800-2100) become NULL and are counted per
column in `file_load.invalid_values`; the decimal comma becomes `numeric`; NUL bytes are
stripped. A record with the wrong number of fields is quarantined in
`cnpj_audit.rejected_row`, never dropped in silence; the one leniency is an empty field
past the last (`...;"x";` or `...;"x";""`), which DuckDB reads as a trailing delimiter:
the record loads with its columns, and no value is lost. For every file the loader checks
that physical lines = lines of loaded rows + lines of rejected records + blank lines,
and fails the file if not.

Line numbers are physical lines of the member (what `sed -n 'Np'` shows): a quoted
field holding a newline makes its record span two lines.


## `cnpj_completo`

`cnpj/cnpj_completo` (`cnpj.cnpj_completo`, a **view** over every release): one row per
establishment with its company, its Simples options, its partners as a jsonb array
(`socios`) and the description of every lookup code (`*_descricao`). Filter it on
`release` (and `cnpj_basico`, which reaches the indexes of every joined table: one
company in ~5 ms); a full release scans like the join it is (~9 s per million
establishments here). It is a view because the table copy cost as much as loading the
establishments and sat at the end of every release job (see [the measurement
notebook](notebook.md#the-whole-job)). For exports and repeated full scans, materialize
`cnpj/cnpj_completo` with `materialize: true` in the launchpad: it also writes
`cnpj.cnpj_completo_<YYYY_MM>`, a table copy of that release, indexed like the
establishments and replaced atomically. Its metadata carries `dagster/column_lineage`
(which source columns feed each column); each build is a `table_load` row of its own in
the audit.


"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _table(spec: TableSpec) -> list[str]:
    key = ", ".join(f"`{c}`" for c in spec.key or ()) or "none"
    names = spec.zip_names()
    zips = f"`{names[0]}`" if len(names) == 1 else f"`{names[0]}` to `{names[-1]}`"
    lines = [
        f"### `{SCHEMA}.{spec.name}`",
        "",
        spec.description,
        "",
        f"Key: {key}; indexed on {', '.join(f'`{c}`' for c in spec.index_columns)}; from {zips}.",
        "",
        "| column | type | width | references | description |",
        "|---|---|---|---|---|",
        "| `release` | text | | | the release, `YYYY-MM`: the partition |",
    ]
    for column in spec.columns:
        pg_type = column.kind.pg_type + (' COLLATE "C"' if column.kind is ColumnKind.CODE else "")
        lines.append(
            f"| `{column.name}` | {pg_type} | {column.width or ''} | "
            f"{f'`{column.references}`' if column.references else ''} | "
            f"{_cell(column.description)} |"
        )
    lines += [
        f"| `{LINEAGE_COLUMN}` | bigint | | `cnpj_audit.subbatch_load` | "
        "the sub-batch (COPY) that wrote the row: its lineage |",
        "",
    ]
    return lines


def _completo() -> list[str]:
    lines = [
        f"### `{SCHEMA}.{COMPLETO.name}`",
        "",
        COMPLETO.description,
        "",
        "| column | type | description |",
        "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.pg_type} | {_cell(c.description)} |" for c in COLUMNS]
    return [*lines, ""]


def render() -> str:
    """The whole page, as the specs make it today."""
    lines = [INTRO.rstrip("\n"), "", "## The tables", ""]
    lookups = [s for s in TABLES.values() if s.is_lookup]
    facts = [s for s in TABLES.values() if not s.is_lookup]
    for spec in (*facts, *lookups):
        lines += _table(spec)
    lines += ["## The view", "", *_completo()]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    page = render()
    if args.check:
        if PAGE.read_text() != page:
            print(f"{PAGE} is stale: run python docs/schema_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
