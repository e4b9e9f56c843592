"""What changed between a release and the one loaded before it, for every company.

One set-based pass per table: the release's rows and the previous release's, each
filtered to its partition, full-joined on their key (the indexes the load built), kept
only where a row appeared, went or differs; then each pair gives one row per kind of
change it shows, with the columns that changed, their old and new values, and the new
row's `_subbatch_id` (its lineage back to a file line). Values compare as loaded:
typed dates and decimals, NULL for empty.

Kinds, by table:
- estabelecimentos (by CNPJ): opened, gone, status_changed (situacao, its date and
  reason), moved (address, municipality, country), activity_changed (main or secondary
  CNAE), other_changed (any other column);
- empresas (by cnpj_basico): renamed, legal_nature_changed, capital_changed,
  size_changed, other_changed;
- socios: partner_in, partner_out, qualification_changed, other_changed. Partners have
  no key: one is identified by its company, its kind (company, person, foreigner), its
  masked CPF or CNPJ and its name. Masked CPFs repeat within a company (`***123456**`),
  so the name tells two partners apart; a partner whose name is corrected shows as one
  out and one in;
- simples (by cnpj_basico): simples_in, simples_out, mei_in, mei_out (the option and
  its dates).
A key repeated within a release (real releases repeat records) counts its first row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.postgres.access import ensure_schema
from cnpj_assets.specs import (
    EMPRESAS,
    ESTABELECIMENTOS,
    SIMPLES,
    SOCIOS,
    TableSpec,
    derived_table,
)

CHANGES = derived_table(
    "changes", "What changed since the release loaded before, one row per change.", None, ("cnpj",)
)
"""The table's identity for the child/swap helpers; its columns are PARENT_DDL's."""
WORK_MEM = "256MB"

PARENT_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    release text NOT NULL,
    previous_release text NOT NULL,
    table_name text NOT NULL,
    cnpj text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    changed_columns text[] NOT NULL,
    old_values jsonb,
    new_values jsonb,
    _subbatch_id bigint
) PARTITION BY LIST (release)
"""


@dataclass(frozen=True)
class Group:
    """A kind of change: the columns it watches. A kind with a direction (in or out) is
    named by the new row: `direction` = (column, value, kind if equal, kind if not)."""

    kind: str
    columns: tuple[str, ...]
    direction: tuple[str, str, str, str] | None = None

    def kind_sql(self) -> sql.Composable:
        if self.direction is None:
            return sql.Literal(self.kind)
        column, value, yes, no = self.direction
        return sql.SQL("CASE WHEN p.n_row ->> {} = {} THEN {} ELSE {} END").format(
            sql.Literal(column), sql.Literal(value), sql.Literal(yes), sql.Literal(no)
        )


@dataclass(frozen=True)
class Comparison:
    """How one table is compared between releases."""

    spec: TableSpec
    key: tuple[str, ...]
    cnpj: tuple[str, ...]  # columns joined into the change's cnpj
    groups: tuple[Group, ...]
    appeared: str | None = None  # kind of a row only in the new release
    went: str | None = None  # kind of a row only in the previous one
    repeats: bool = False  # the key may repeat within a release (partners: no real key)


def _comparisons() -> tuple[Comparison, ...]:
    status = ("situacao_cadastral", "data_situacao_cadastral", "motivo_situacao_cadastral")
    address = (
        "tipo_logradouro", "logradouro", "numero", "complemento", "bairro", "cep", "uf",
        "municipio", "nome_cidade_exterior", "pais",
    )  # fmt: skip
    activity = ("cnae_fiscal_principal", "cnae_fiscal_secundaria")
    key = ESTABELECIMENTOS.key or ()
    rest = tuple(
        c for c in ESTABELECIMENTOS.column_names if c not in (*key, *status, *address, *activity)
    )
    establishments = Comparison(
        ESTABELECIMENTOS,
        key,
        key,
        (
            Group("status_changed", status),
            Group("moved", address),
            Group("activity_changed", activity),
            Group("other_changed", rest),
        ),
        "opened",
        "gone",
    )
    company = ("razao_social", "natureza_juridica", "capital_social", "porte_empresa")
    companies = Comparison(
        EMPRESAS,
        ("cnpj_basico",),
        ("cnpj_basico",),
        (
            Group("renamed", ("razao_social",)),
            Group("legal_nature_changed", ("natureza_juridica",)),
            Group("capital_changed", ("capital_social",)),
            Group("size_changed", ("porte_empresa",)),
            Group("other_changed", tuple(c for c in EMPRESAS.column_names[1:] if c not in company)),
        ),
    )
    identity = ("cnpj_basico", "identificador_socio", "cpf_cnpj_socio", "nome_socio_razao_social")
    partners = Comparison(
        SOCIOS,
        identity,
        ("cnpj_basico",),
        (
            Group("qualification_changed", ("qualificacao_socio",)),
            Group(
                "other_changed",
                tuple(
                    c
                    for c in SOCIOS.column_names
                    if c not in identity and c != "qualificacao_socio"
                ),
            ),
        ),
        "partner_in",
        "partner_out",
        repeats=True,
    )
    simples = Comparison(
        SIMPLES,
        ("cnpj_basico",),
        ("cnpj_basico",),
        (
            Group(
                "simples",
                ("opcao_pelo_simples", "data_opcao_simples", "data_exclusao_simples"),
                ("opcao_pelo_simples", "S", "simples_in", "simples_out"),
            ),
            Group(
                "mei",
                ("opcao_mei", "data_opcao_mei", "data_exclusao_mei"),
                ("opcao_mei", "S", "mei_in", "mei_out"),
            ),
        ),
    )
    return (establishments, companies, partners, simples)


COMPARISONS = _comparisons()


def _rows(spec: TableSpec, key: tuple[str, ...], parameter: str, dedupe: bool) -> sql.Composed:
    """The release's rows; with `dedupe`, one per key (its first, by file order)."""
    table, release = tables.qualified(spec.name), sql.Placeholder(parameter)
    if not dedupe:
        return sql.SQL("(SELECT * FROM {} WHERE release = {})").format(table, release)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in key)
    return sql.SQL(
        "(SELECT DISTINCT ON ({key}) * FROM {table} WHERE release = {release} "
        "ORDER BY {key}, _subbatch_id)"
    ).format(key=columns, table=table, release=release)


def _changed(alias_new: str, alias_old: str, columns: tuple[str, ...]) -> sql.Composed:
    """The names of the columns that differ, as a text[]."""
    return sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(
        sql.SQL(", ").join(
            sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
                sql.Identifier(alias_new, c), sql.Identifier(alias_old, c), sql.Literal(c)
            )
            for c in columns
        )
    )


def comparison_statement(
    comparison: Comparison, child: sql.Composable, dedupe: bool
) -> sql.Composed:
    """INSERT the changes of one table into the child (parameters release, previous).

    A partner's identity may hold NULLs (no CPF given), compared as empty; the keys of
    the other tables are never NULL, and a plain equality lets the join hash them.
    """
    spec = comparison.spec
    key = comparison.key
    equal = "coalesce({}, '') = coalesce({}, '')" if comparison.repeats else "{} = {}"
    join = sql.SQL(" AND ").join(
        sql.SQL(equal).format(sql.Identifier("n", c), sql.Identifier("o", c)) for c in key
    )
    present_n = sql.SQL("n.{} IS NOT NULL").format(sql.Identifier(key[0]))
    present_o = sql.SQL("o.{} IS NOT NULL").format(sql.Identifier(key[0]))
    compared = [c for c in spec.column_names if c not in key]
    differs = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.Identifier("n", c) for c in compared),
        sql.SQL(", ").join(sql.Identifier("o", c) for c in compared),
    )
    cnpj = sql.SQL("coalesce({}, {})").format(
        sql.SQL(" || ").join(sql.Identifier("n", c) for c in comparison.cnpj),
        sql.SQL(" || ").join(sql.Identifier("o", c) for c in comparison.cnpj),
    )
    kinds = []
    if comparison.appeared:
        kinds.append(
            sql.SQL("({}, NOT p.in_old, '{{}}'::text[])").format(sql.Literal(comparison.appeared))
        )
    if comparison.went:
        kinds.append(
            sql.SQL("({}, NOT p.in_new, '{{}}'::text[])").format(sql.Literal(comparison.went))
        )
    for group in comparison.groups:
        kinds.append(
            sql.SQL("({}, p.in_new AND p.in_old, p.{})").format(
                group.kind_sql(), sql.Identifier(f"cols_{group.kind}")
            )
        )
    group_columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(
            _changed("n", "o", group.columns), sql.Identifier(f"cols_{group.kind}")
        )
        for group in comparison.groups
    )

    def as_json(alias: str) -> sql.Composed:
        """The row's columns as jsonb, column by column: a whole-row reference (`to_jsonb(n)`)
        made the scans build every row's record, tripling their time."""
        return sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(alias, c))
                for c in spec.column_names
            )
        )

    return sql.SQL(
        "INSERT INTO {child} (release, previous_release, table_name, cnpj, kind, "
        "changed_columns, old_values, new_values, _subbatch_id) "
        "SELECT %(release)s, %(previous)s, {table}, p.cnpj, g.kind, g.cols, "
        "CASE WHEN NOT p.in_old THEN NULL WHEN cardinality(g.cols) = 0 THEN p.o_row "
        "ELSE (SELECT jsonb_object_agg(c, p.o_row -> c) FROM unnest(g.cols) AS c) END, "
        "CASE WHEN NOT p.in_new THEN NULL WHEN cardinality(g.cols) = 0 THEN p.n_row "
        "ELSE (SELECT jsonb_object_agg(c, p.n_row -> c) FROM unnest(g.cols) AS c) END, "
        "p.subbatch "
        "FROM (SELECT {cnpj} AS cnpj, {present_n} AS in_new, {present_o} AS in_old, "
        "{n_row} AS n_row, {o_row} AS o_row, n._subbatch_id AS subbatch, {groups} "
        "FROM {new} AS n FULL JOIN {old} AS o ON {join} "
        "WHERE NOT ({present_n}) OR NOT ({present_o}) OR {differs}) AS p "
        "CROSS JOIN LATERAL (VALUES {kinds}) AS g(kind, emit, cols) "
        "WHERE g.emit AND (NOT (p.in_new AND p.in_old) OR cardinality(g.cols) > 0)"
    ).format(
        child=child,
        table=sql.Literal(spec.name),
        n_row=as_json("n"),
        o_row=as_json("o"),
        cnpj=cnpj,
        present_n=present_n,
        present_o=present_o,
        groups=group_columns,
        new=_rows(spec, key, "release", dedupe),
        old=_rows(spec, key, "previous", dedupe),
        join=join,
        differs=differs,
        kinds=sql.SQL(", ").join(kinds),
    )


def ensure_parent(connection: psycopg.Connection) -> None:
    ensure_schema(connection, tables.SCHEMA)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj_assets.schema'))")
        connection.execute(sql.SQL(PARENT_DDL).format(table=tables.qualified(CHANGES.name)))  # noqa: S608


def previous_release(connection: psycopg.Connection, release: str) -> str | None:
    """The newest release before this one whose four fact tables are loaded and attached.

    The audit names the candidates; the catalogue has the last word, since a release's
    tables may have been dropped by hand as well as by retention.
    """
    candidates = connection.execute(
        "SELECT release FROM cnpj_audit.table_load "
        "WHERE status = 'COMPLETED' AND dropped_at IS NULL AND release < %s "
        "AND table_name = ANY(%s) GROUP BY release HAVING count(DISTINCT table_name) = %s "
        "ORDER BY release DESC",
        (release, [c.spec.name for c in COMPARISONS], len(COMPARISONS)),
    ).fetchall()
    for (candidate,) in candidates:
        children = [f"{tables.SCHEMA}.{tables.child_name(c.spec, candidate)}" for c in COMPARISONS]
        row = connection.execute(
            "SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) AS name",
            (children,),
        ).fetchone()
        if row and row[0]:
            return candidate
    return None


def _repeats_keys(connection: psycopg.Connection, table: str, releases: list[str]) -> bool:
    """Whether the last load of the table in either release found repeated keys."""
    row = connection.execute(
        "SELECT coalesce(bool_or(duplicate_keys > 0), false) FROM cnpj_audit.table_load "
        "WHERE id IN (SELECT max(id) FROM cnpj_audit.table_load WHERE table_name = %s "
        "AND release = ANY(%s) AND status = 'COMPLETED' GROUP BY release)",
        (table, releases),
    ).fetchone()
    return bool(row and row[0])


def fill(database_url: str, child: tables.LoadingChild, previous: str) -> None:
    """Insert every table's changes into the child, two tables at a time.

    An INSERT ... SELECT runs on one core (PostgreSQL plans no parallel workers for
    it), so the comparisons go two at a time on connections of their own, the largest
    (estabelecimentos, half the work) beside the three others.

    Each comparison hashes one release's rows to join the other's. Left to itself the
    planner sorted both sides for a merge join, spilling to disk with the default 4 MB
    of work_mem, much slower than a hash in memory. So each connection gets WORK_MEM and
    no merge joins. Rows are de-duplicated by key only where a load found repeated keys
    (the sort costs time on each side).
    """
    largest = [c for c in COMPARISONS if c.spec is ESTABELECIMENTOS]
    others = [c for c in COMPARISONS if c.spec is not ESTABELECIMENTOS]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="changes") as pool:
        done = [
            pool.submit(_compare, database_url, child, previous, group)
            for group in (largest, others)
        ]
        for future in done:
            future.result()


def _compare(
    database_url: str,
    child: tables.LoadingChild,
    previous: str,
    comparisons: list[Comparison],
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("SET work_mem = {}").format(sql.Literal(WORK_MEM)))
        connection.execute("SET enable_mergejoin = off")
        for comparison in comparisons:
            dedupe = comparison.repeats or _repeats_keys(
                connection, comparison.spec.name, [child.release, previous]
            )
            connection.execute(
                comparison_statement(comparison, child.identifier, dedupe),
                {"release": child.release, "previous": previous},
            )
