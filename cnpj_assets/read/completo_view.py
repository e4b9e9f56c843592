"""`cnpj.cnpj_completo`: one row per establishment with everything a reader asks for.

Each establishment comes with its company, its Simples options, its partners as a
jsonb array, its tax regimes by year (the newest regime_tributario snapshot) and the
description of every code, so a reader needs no joins. It is a view
over the indexed tables of every release, not a copy: a copy cost as much as loading the
establishments, and a reader's filter on `release` and `cnpj_basico` reaches every joined
table's index. It lives below defs/ and releases/, which both create and name it.

The column list is derived from the table specs, so a column added to a spec shows up
here, in the column schema and in the column lineage together. Joined tables are
de-duplicated by key first: a release that repeats a company (real ones do) must not
repeat its establishments. Repeated establishments are kept and reported, as in the
source.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cnpj_assets.postgres import tables
from cnpj_assets.read.cnaes_secundarias import SOURCE_COLUMN, codes_of
from cnpj_assets.read.label_table import ensure_labels, label_join
from cnpj_assets.read.labels import label_set_for
from cnpj_assets.regime import current as regime_current
from cnpj_assets.regime.spec import REGIME_TRIBUTARIO
from cnpj_assets.specs import (
    EMPRESAS,
    ESTABELECIMENTOS,
    SIMPLES,
    SOCIOS,
    TABLES,
    ColumnKind,
    TableSpec,
    derived_table,
)

COMPLETO = derived_table(
    "cnpj_completo",
    "One row per establishment with its company, Simples, partners and lookups (a view).",
    ESTABELECIMENTOS.key,
    ESTABELECIMENTOS.index_columns,
)
"""The table's identity for the child/swap helpers of postgres.tables; it has no files,
and its columns (a jsonb one among them) are COLUMNS below, not ColumnSpecs."""


@dataclass(frozen=True)
class CompletoColumn:
    """One output column: its type, the SQL that computes it and the source columns it reads."""

    name: str
    pg_type: str
    expression: sql.Composable
    sources: tuple[tuple[str, str], ...]  # (table, column) pairs feeding it
    description: str = ""
    code: bool = False  # a code: compared byte-wise (COLLATE "C"), as in the source tables


@dataclass(frozen=True)
class _Part:
    """The columns one source table contributes, and the lookup joins they need."""

    columns: list[CompletoColumn]
    joins: list[sql.Composable]


def _lookup_join(
    lookup: TableSpec, alias: str, source_alias: str, code: sql.Composable, point: bool = False
) -> sql.Composed:
    """LEFT JOIN one row per code of the row's release's lookup (a repeated code must not fan
    out); the release and the code are DISTINCT ON columns, so a reader's filter on the
    release reaches the lookup's partition.

    `point` reads the same row (the code's first by sub-batch) through the lookup's index,
    one probe per row: what a read of a few establishments wants, where the DISTINCT ON
    form sorts every lookup whole for each statement.
    """
    template = (
        "LEFT JOIN LATERAL (SELECT l.descricao FROM {lookup} l "
        "WHERE l.release = {source}.release AND l.codigo = {code} "
        "ORDER BY l._subbatch_id LIMIT 1) AS {alias} ON true"
        if point
        else "LEFT JOIN (SELECT DISTINCT ON (release, codigo) release, codigo, descricao "
        "FROM {lookup} ORDER BY release, codigo, _subbatch_id) AS {alias} "
        "ON {alias}.release = {source}.release AND {alias}.codigo = {code}"
    )
    return sql.SQL(template).format(
        lookup=tables.qualified(lookup.name),
        alias=sql.Identifier(alias),
        source=sql.Identifier(source_alias),
        code=code,
    )


def _spec_part(spec: TableSpec, alias: str, skip: Iterable[str] = (), point: bool = False) -> _Part:
    """Every column of a source table, each code followed by its lookup description."""
    columns, joins = [], []
    for column in spec.columns:
        if column.name in skip:
            continue
        value = sql.Identifier(alias, column.name)
        columns.append(
            CompletoColumn(
                column.name,
                column.kind.pg_type,
                value,
                ((spec.name, column.name),),
                column.description,
                code=column.kind is ColumnKind.CODE,
            )
        )
        label_set = label_set_for(spec.name, column.name)
        if label_set is not None:
            label_alias = f"{alias}_{column.name}_label"
            joins.append(label_join(label_set, label_alias, alias, value))
            columns.append(
                CompletoColumn(
                    f"{column.name}_descricao",
                    "text",
                    sql.Identifier(label_alias, "descricao"),
                    ((spec.name, column.name),),
                    f"label of {column.name} in the layout (cnpj.labels, {label_set.domain})",
                )
            )
        if column.name == SOURCE_COLUMN and spec is ESTABELECIMENTOS:
            columns.append(_secondary_activities(alias))
        lookup = TABLES.get(column.references or "")
        if lookup is None or not lookup.is_lookup:
            continue
        lookup_alias = f"{alias}_{column.name}"
        joins.append(_lookup_join(lookup, lookup_alias, alias, value, point))
        columns.append(
            CompletoColumn(
                f"{column.name}_descricao",
                "text",
                sql.Identifier(lookup_alias, "descricao"),
                ((spec.name, column.name), (lookup.name, "codigo"), (lookup.name, "descricao")),
                f"description of {column.name} in {lookup.name}",
            )
        )
    return _Part(columns, joins)


def _secondary_activities(alias: str) -> CompletoColumn:
    """The secondary codes as a jsonb array of {codigo, descricao}, in the order of the
    source column, by the rule of cnpj.cnaes_secundarias (read/cnaes_secundarias.py);
    each description from the row's release's cnaes lookup, NULL for an unknown code."""
    cnaes = TABLES["cnaes"]
    expression = sql.SQL(
        "coalesce((SELECT jsonb_agg(jsonb_build_object('codigo', c.cnae, 'descricao', "
        "(SELECT l.descricao FROM {cnaes} l WHERE l.release = {release} AND l.codigo = c.cnae "
        "ORDER BY l._subbatch_id LIMIT 1)) ORDER BY c.position) FROM {codes} c), '[]'::jsonb)"
    ).format(
        cnaes=tables.qualified(cnaes.name),
        release=sql.Identifier(alias, "release"),
        codes=codes_of(sql.Identifier(alias, SOURCE_COLUMN)),
    )
    return CompletoColumn(
        "cnaes_secundarias",
        "jsonb",
        expression,
        (
            (ESTABELECIMENTOS.name, SOURCE_COLUMN),
            (cnaes.name, "codigo"),
            (cnaes.name, "descricao"),
        ),
        "the secondary activities, [{codigo, descricao}] in the source's order ([] if none)",
    )


def _tax_regimes() -> CompletoColumn:
    """The establishment's declared regimes as a jsonb array, by year, from the newest
    snapshot of the folder (cnpj_current.regime_tributario: it changes yearly, not with
    the release); the folder names the CNPJ that filed, so a branch usually has none."""
    fields = ("ano", "cnpj_da_scp", "forma_de_tributacao", "quantidade_de_escrituracoes")
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(name), sql.Identifier("r", name)) for name in fields
    )
    expression = sql.SQL(
        "coalesce((SELECT jsonb_agg(jsonb_build_object({pairs}) ORDER BY r.ano, "
        "r.cnpj_da_scp NULLS FIRST, r.forma_de_tributacao, r.quantidade_de_escrituracoes) "
        "FROM {current} r "
        "WHERE r.cnpj = e.cnpj_basico || e.cnpj_ordem || e.cnpj_dv), '[]'::jsonb)"
    ).format(pairs=pairs, current=regime_current.VIEW)
    return CompletoColumn(
        REGIME_TRIBUTARIO.name,
        "jsonb",
        expression,
        tuple((REGIME_TRIBUTARIO.name, name) for name in ("cnpj", *fields)),
        "the regimes declared by year: [{ano, cnpj_da_scp, forma_de_tributacao, "
        "quantidade_de_escrituracoes}] ([] if none)",
    )


def _one_per_company(spec: TableSpec, alias: str) -> sql.Composed:
    """LEFT JOIN one row per (release, cnpj_basico) of a company-level table."""
    return sql.SQL(
        "LEFT JOIN (SELECT DISTINCT ON (release, cnpj_basico) * FROM {table} "
        "ORDER BY release, cnpj_basico, _subbatch_id) AS {alias} "
        "ON {alias}.release = e.release AND {alias}.cnpj_basico = e.cnpj_basico"
    ).format(table=tables.qualified(spec.name), alias=sql.Identifier(alias))


def _partners_join(part: _Part) -> sql.Composed:
    """LEFT JOIN each company's partners of the same release, aggregated into a jsonb array."""
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(c.name), c.expression) for c in part.columns
    )
    return sql.SQL(
        "LEFT JOIN (SELECT p.release, p.cnpj_basico, jsonb_agg(jsonb_build_object({pairs}) "
        "ORDER BY p.nome_socio_razao_social, p.cpf_cnpj_socio) AS socios "
        "FROM {socios} p {joins} GROUP BY p.release, p.cnpj_basico) AS so "
        "ON so.release = e.release AND so.cnpj_basico = e.cnpj_basico"
    ).format(
        pairs=pairs,
        socios=tables.qualified(SOCIOS.name),
        joins=sql.SQL(" ").join(part.joins),
    )


def _build_columns(point: bool = False) -> tuple[list[CompletoColumn], list[sql.Composable]]:
    establishment = _spec_part(ESTABELECIMENTOS, "e", point=point)
    company = _spec_part(EMPRESAS, "em", skip=("cnpj_basico",), point=point)
    simples = _spec_part(SIMPLES, "si", skip=("cnpj_basico",), point=point)
    partners = _spec_part(SOCIOS, "p", skip=("cnpj_basico",), point=point)
    key = tuple((ESTABELECIMENTOS.name, c) for c in ESTABELECIMENTOS.key or ())
    columns = [
        CompletoColumn(
            "release", "text", sql.SQL("e.release"), ((ESTABELECIMENTOS.name, "release"),)
        ),
        CompletoColumn(
            "cnpj",
            "text",
            sql.SQL("e.cnpj_basico || e.cnpj_ordem || e.cnpj_dv"),
            key,
            "the 14-character CNPJ",
            code=True,
        ),
        *establishment.columns,
        *company.columns,
        *simples.columns,
        CompletoColumn(
            "socios",
            "jsonb",
            sql.SQL("coalesce(so.socios, '[]'::jsonb)"),
            tuple(
                dict.fromkeys(
                    (
                        (SOCIOS.name, "cnpj_basico"),
                        *(s for c in partners.columns for s in c.sources),
                    )
                )
            ),
            "the company's partners, one object per socios row, with lookup descriptions",
        ),
        CompletoColumn(
            tables.LINEAGE_COLUMN,
            "bigint",
            sql.SQL("e._subbatch_id"),
            ((ESTABELECIMENTOS.name, tables.LINEAGE_COLUMN),),
            "the establishment row's cnpj_audit.subbatch_load.id",
        ),
        _tax_regimes(),  # last: the columns before it keep their places in views over it
    ]
    joins = [
        _one_per_company(EMPRESAS, "em"),
        _one_per_company(SIMPLES, "si"),
        _partners_join(partners),
        *establishment.joins,
        *company.joins,
        *simples.joins,
    ]
    return columns, joins


COLUMNS, _JOINS = _build_columns()
"""The columns of cnpj.cnpj_completo in table order, and the joins their SQL needs."""
_POINT_JOINS = _build_columns(point=True)[1]
"""The same joins with each lookup read by its index (`_lookup_join`'s `point`)."""


VIEW = tables.qualified(COMPLETO.name)


def view_statement(
    establishments: sql.Composable | None = None, point: bool = False
) -> sql.Composed:
    """The view's SELECT: every establishment of every release, with what it joins.

    A reader of a few establishments (read/establishment.py) gets the same columns with
    `point` lookups, over the establishments it names (`cnpj_current.estabelecimentos` for
    the published release), and adds its own WHERE with the alias `e`.
    """
    return sql.SQL("SELECT {values} FROM {establishments} e {joins}").format(
        values=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(c.expression, sql.Identifier(c.name)) for c in COLUMNS
        ),
        establishments=establishments or tables.qualified(ESTABELECIMENTOS.name),
        joins=sql.SQL(" ").join(_POINT_JOINS if point else _JOINS),
    )


def ensure_view(connection: psycopg.Connection) -> None:
    """Create or update the view; leave it (and its readers) alone when it is current.

    A view that already has this definition is not touched: replacing it, even by
    itself, takes an exclusive lock that would queue its readers. Its comment carries
    the definition's hash; the advisory lock is the one `tables.ensure_parent` takes, as
    both may create the schema. The table of earlier versions of the project, a partitioned
    copy built per release, is dropped: the view replaces it.
    """
    ensure_labels(connection)
    regime_current.ensure_current(connection)
    definition = view_statement().as_string(connection)
    digest = hashlib.sha256(definition.encode()).hexdigest()
    comment = f"{COMPLETO.description} Definition sha256 {digest}."
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('cnpj schema'))")
        kind, current = connection.execute(
            "SELECT c.relkind, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (tables.SCHEMA, COMPLETO.name),
        ).fetchone() or (None, None)
        if kind == "v" and current == comment:
            return
        dependents = _dependent_views(connection) if kind == "v" else []
        if kind in ("p", "r"):
            connection.execute(sql.SQL("DROP TABLE {} CASCADE").format(VIEW))
        elif kind == "v":
            connection.execute(sql.SQL("DROP VIEW {} CASCADE").format(VIEW))
        connection.execute(sql.SQL("CREATE VIEW {} AS {}").format(VIEW, view_statement()))
        connection.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(VIEW, sql.Literal(comment)))
        for schema, name, select in dependents:
            connection.execute(
                sql.SQL("CREATE VIEW {} AS {}").format(
                    sql.Identifier(schema, name), sql.SQL(select)
                )
            )


def _dependent_views(connection: psycopg.Connection) -> list[tuple[str, str, str]]:
    """The views over the view (cnpj_current.cnpj_completo), with their definitions: dropped
    with it and made again as they were (their expanded column list), until the next
    publication points them at the new columns."""
    return connection.execute(
        "SELECT DISTINCT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_depend d "
        "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s::regclass "
        "AND c.oid <> d.refobjid",
        (f"{tables.SCHEMA}.{COMPLETO.name}",),
    ).fetchall()


def copy_name(release: str) -> str:
    """The on-demand table copy of one release, e.g. cnpj_completo_2026_10."""
    return tables.child_name(COMPLETO, release)
