"""`cnpj-assets history CNPJ`: a company or establishment across every loaded release.

For each release that has it: the fields a person reads (name, status, address,
activity, partners, Simples and MEI), taken from `cnpj.cnpj_completo` (one row per
establishment, everything joined); then, between consecutive releases, its changes
from `cnpj.changes`, each with its lineage (zip, line range and Dagster run of the row
that shows it). A full CNPJ narrows the establishments to that one; a base shows all of
the company's. Exit codes as `lineage`: 2 for an invalid CNPJ, 1 when no release has it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, TextIO

import psycopg
from psycopg.rows import dict_row

from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.lineage import (
    EXIT_FOUND,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    CnpjQuery,
    dagster_url,
    parsed_or_said,
    run_url,
)
from cnpj_assets.postgres.server import server_url

_SNAPSHOTS = """
SELECT release, cnpj, razao_social, natureza_juridica_descricao AS natureza, capital_social,
       porte_empresa, nome_fantasia, situacao_cadastral, data_situacao_cadastral,
       concat_ws(' ', tipo_logradouro, logradouro, numero, complemento) AS endereco, bairro,
       municipio, municipio_descricao, uf, cep, cnae_fiscal_principal,
       cnae_fiscal_principal_descricao AS cnae_descricao, opcao_pelo_simples, opcao_mei,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('nome', s ->> 'nome_socio_razao_social',
               'qualificacao', s ->> 'qualificacao_socio_descricao')), '[]'::jsonb)
        FROM jsonb_array_elements(socios) AS s) AS socios
FROM cnpj.cnpj_completo
WHERE cnpj_basico = %(basico)s AND (%(cnpj)s::text IS NULL OR cnpj = %(cnpj)s)
ORDER BY release, cnpj
"""

_CHANGES = """
SELECT c.release, c.previous_release, c.table_name, c.cnpj, c.kind, c.changed_columns,
       c.old_values, c.new_values, l.zip_name, l.first_line, l.last_line, l.dagster_run_id
FROM cnpj.changes c LEFT JOIN cnpj_audit.lineage l ON l.subbatch_id = c._subbatch_id
WHERE c.cnpj = %(basico)s
   OR (c.table_name = 'estabelecimentos' AND left(c.cnpj, 8) = %(basico)s
       AND (%(cnpj)s::text IS NULL OR c.cnpj = %(cnpj)s))
ORDER BY c.release, c.table_name, c.cnpj, c.kind
"""


@dataclass
class History:
    query: str
    releases: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)


def find_history(connection: psycopg.Connection, query: CnpjQuery) -> History:
    """Every release's view of the CNPJ and every change between them."""
    ensure_audit_schema(connection)
    params = {"basico": query.basico, "cnpj": query.text if query.ordem else None}
    history = History(query.text)
    with connection.cursor(row_factory=dict_row) as cursor:
        if cursor.execute("SELECT to_regclass('cnpj.cnpj_completo')").fetchone()["to_regclass"]:
            history.snapshots = cursor.execute(_SNAPSHOTS, params).fetchall()
        if cursor.execute("SELECT to_regclass('cnpj.changes')").fetchone()["to_regclass"]:
            history.changes = cursor.execute(_CHANGES, params).fetchall()
    base = dagster_url()
    for change in history.changes:
        change["run_url"] = run_url(change["dagster_run_id"], base)
    history.releases = sorted({s["release"] for s in history.snapshots})
    return history


def _value(value: Any) -> str:
    return "-" if value is None else str(value)


def _snapshot_line(row: dict[str, Any]) -> str:
    partners = ", ".join(f"{p['nome']} ({p['qualificacao']})" for p in row["socios"]) or "none"
    return (
        f"  {row['cnpj']}  {_value(row['razao_social'])} / {_value(row['nome_fantasia'])}\n"
        f"    status {_value(row['situacao_cadastral'])} since "
        f"{_value(row['data_situacao_cadastral'])}; {row['endereco']}, {_value(row['bairro'])}, "
        f"{_value(row['municipio_descricao'])} ({_value(row['municipio'])})-{_value(row['uf'])} "
        f"{_value(row['cep'])}\n"
        f"    activity {_value(row['cnae_fiscal_principal'])} {_value(row['cnae_descricao'])}; "
        f"Simples {_value(row['opcao_pelo_simples'])}, MEI {_value(row['opcao_mei'])}\n"
        f"    partners: {partners}"
    )


def _change_line(change: dict[str, Any]) -> str:
    old, new = change["old_values"] or {}, change["new_values"] or {}
    details = ", ".join(f"{c} {old.get(c)!r} -> {new.get(c)!r}" for c in change["changed_columns"])
    where = (
        f"from {change['zip_name']} lines {change['first_line']}-{change['last_line']}, "
        f"run {change['dagster_run_id']} {change['run_url'] or ''}".rstrip()
        if change["zip_name"]
        else "(no row in this release: it went)"
    )
    return (
        f"  {change['table_name']} {change['cnpj']} {change['kind']}"
        + (f": {details}" if details else "")
        + f"\n    {where}"
    )


def format_history(query: CnpjQuery, history: History) -> str:
    lines = [
        f"CNPJ {query.formatted}: {len(history.releases)} release(s) "
        f"({', '.join(history.releases) or 'none'})"
    ]
    for release in sorted({*history.releases, *(c["release"] for c in history.changes)}):
        changes = [c for c in history.changes if c["release"] == release]
        lines += ["", release]
        lines += [_snapshot_line(s) for s in history.snapshots if s["release"] == release]
        if changes:
            lines.append(f"  changes since {changes[0]['previous_release']}:")
            lines += ["  " + _change_line(c) for c in changes]
    return "\n".join(lines)


def _json_default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_json(history: History) -> str:
    """The answer for machines (`history --json`, the API's `/{cnpj}/history`)."""
    return json.dumps(asdict(history), default=_json_default, ensure_ascii=False, indent=1)


def run(
    text: str, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """The `history` command: print the answer and return the exit code (0, 1 or 2)."""
    out, err = out or sys.stdout, err or sys.stderr
    query = parsed_or_said(text, err)
    if query is None:
        return EXIT_INVALID
    with psycopg.connect(server_url().url) as connection:
        history = find_history(connection, query)
    if not history.snapshots and not history.changes:
        print(f"CNPJ {query.formatted} is in no loaded release", file=err)
        return EXIT_NOT_FOUND
    print(to_json(history) if as_json else format_history(query, history), file=out)
    return EXIT_FOUND
