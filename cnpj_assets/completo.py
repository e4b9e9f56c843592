"""`cnpj/cnpj_completo`: one row per establishment with everything an API user asks for.

Each establishment comes with its company, its Simples options, its partners as a
jsonb array and the description of every lookup code, so a reader needs no joins. The
table is built inside PostgreSQL with one INSERT ... SELECT (shipping 72 M rows through
Python would be the bottleneck), into a fresh child of the partitioned parent that is
swapped in like the loaded tables' children: a rebuild replaces the release exactly.

The column list is derived from the table specs, so a column added to a spec shows up
here, in the column schema and in the column lineage together. Joined tables are
de-duplicated by key first: a release that repeats a company (real ones do) must not
repeat its establishments. Repeated establishments are kept and reported, as in the
source.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from cnpj_assets.assets import GROUP, RELEASES
from cnpj_assets.audit import AuditService
from cnpj_assets.loader import RunInfo
from cnpj_assets.postgres import tables
from cnpj_assets.resources import PostgresResource
from cnpj_assets.specs import (
    EMPRESAS,
    ESTABELECIMENTOS,
    SIMPLES,
    SOCIOS,
    TABLES,
    ColumnKind,
    TableSpec,
)

COMPLETO = TableSpec(
    name="cnpj_completo",
    zip_base="",
    member_suffix="",
    member_template="",
    columns=(),
    key=ESTABELECIMENTOS.key,
    index_columns=ESTABELECIMENTOS.index_columns,
    description="One row per establishment with its company, Simples, partners and lookups.",
    file_count=0,
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


def _lookup_join(lookup: TableSpec, alias: str, code: sql.Composable) -> sql.Composed:
    """LEFT JOIN one row per code of the release's lookup (a repeated code must not fan out)."""
    return sql.SQL(
        "LEFT JOIN (SELECT DISTINCT ON (codigo) codigo, descricao FROM {lookup} "
        "WHERE release = %(release)s ORDER BY codigo, _subbatch_id) AS {alias} "
        "ON {alias}.codigo = {code}"
    ).format(
        lookup=sql.Identifier(tables.SCHEMA, lookup.name), alias=sql.Identifier(alias), code=code
    )


def _spec_part(spec: TableSpec, alias: str, skip: Iterable[str] = ()) -> _Part:
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
        lookup = TABLES.get(column.references or "")
        if lookup is None or not lookup.is_lookup:
            continue
        lookup_alias = f"{alias}_{column.name}"
        joins.append(_lookup_join(lookup, lookup_alias, value))
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


def _one_per_company(spec: TableSpec, alias: str) -> sql.Composed:
    """LEFT JOIN one row per cnpj_basico of a company-level table of the release."""
    return sql.SQL(
        "LEFT JOIN (SELECT DISTINCT ON (cnpj_basico) * FROM {table} WHERE release = %(release)s "
        "ORDER BY cnpj_basico, _subbatch_id) AS {alias} ON {alias}.cnpj_basico = e.cnpj_basico"
    ).format(table=sql.Identifier(tables.SCHEMA, spec.name), alias=sql.Identifier(alias))


def _partners_join(part: _Part) -> sql.Composed:
    """LEFT JOIN the release's partners of each company, aggregated into a jsonb array."""
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(c.name), c.expression) for c in part.columns
    )
    return sql.SQL(
        "LEFT JOIN (SELECT p.cnpj_basico, jsonb_agg(jsonb_build_object({pairs}) "
        "ORDER BY p.nome_socio_razao_social, p.cpf_cnpj_socio) AS socios "
        "FROM {socios} p {joins} WHERE p.release = %(release)s GROUP BY p.cnpj_basico) AS so "
        "ON so.cnpj_basico = e.cnpj_basico"
    ).format(
        pairs=pairs,
        socios=sql.Identifier(tables.SCHEMA, SOCIOS.name),
        joins=sql.SQL(" ").join(part.joins),
    )


def _build_columns() -> tuple[list[CompletoColumn], list[sql.Composable]]:
    establishment = _spec_part(ESTABELECIMENTOS, "e")
    company = _spec_part(EMPRESAS, "em", skip=("cnpj_basico",))
    simples = _spec_part(SIMPLES, "si", skip=("cnpj_basico",))
    partners = _spec_part(SOCIOS, "p", skip=("cnpj_basico",))
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
    ]
    joins = [
        _one_per_company(EMPRESAS, "em"),
        _one_per_company(SIMPLES, "si"),
        _partners_join(partners),
        *establishment.joins,
        *company.joins,
    ]
    return columns, joins


COLUMNS, _JOINS = _build_columns()
"""The columns of cnpj.cnpj_completo in table order, and the joins their SQL needs."""


def ensure_parent(connection: psycopg.Connection) -> None:
    """Create the partitioned parent from COLUMNS before the shared helpers look for it."""
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}{}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.pg_type),
            sql.SQL(' COLLATE "C"' if c.code else ""),
            sql.SQL(" NOT NULL" if c.name in ("release", tables.LINEAGE_COLUMN) else ""),
        )
        for c in COLUMNS
    )
    connection.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(tables.SCHEMA))
    )
    connection.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}) PARTITION BY LIST (release)").format(
            sql.Identifier(tables.SCHEMA, COMPLETO.name), definitions
        )
    )


def insert_rows(connection: psycopg.Connection, child: tables.LoadingChild) -> int:
    """Fill the child with one row per establishment of its release; return the row count."""
    statement = sql.SQL(
        "INSERT INTO {child} ({names}) SELECT {values} FROM {establishments} e {joins} "
        "WHERE e.release = %(release)s"
    ).format(
        child=child.identifier,
        names=sql.SQL(", ").join(sql.Identifier(c.name) for c in COLUMNS),
        values=sql.SQL(", ").join(c.expression for c in COLUMNS),
        establishments=sql.Identifier(tables.SCHEMA, ESTABELECIMENTOS.name),
        joins=sql.SQL(" ").join(_JOINS),
    )
    return connection.execute(statement, {"release": child.release}).rowcount


@dataclass(frozen=True)
class CompletoSummary:
    """What a build did: the audit row, the attached table and its numbers."""

    table_load_id: int
    target_table: str
    rows: int
    duplicate_keys: int
    seconds: float


def build_completo(database_url: str, release: str, run: RunInfo) -> CompletoSummary:
    """Build the release's cnpj_completo in a fresh child and swap it in, audited.

    The build is a table_load of its own (no files: it reads the loaded tables), so
    the audit says which run built which release, with its rows and its status.
    """
    started = time.perf_counter()
    audit = AuditService(database_url)
    try:
        with (
            psycopg.connect(database_url, autocommit=True) as data,
            audit.table_context(
                COMPLETO.name,
                release,
                asset_key=run.asset_key,
                partition_key=run.partition_key,
                dagster_run_id=run.dagster_run_id,
            ) as node,
        ):
            ensure_parent(data)
            child = tables.create_loading_child(data, COMPLETO, release, node.id)
            try:
                node.rows = insert_rows(data, child)
                duplicates = tables.build_indexes(data, child)
                target = tables.swap_in(data, child)
            except BaseException:
                tables.drop_child(data, child)
                raise
            node.extra.update({"target_table": target, "duplicate_keys": duplicates})
    finally:
        audit.close()
    return CompletoSummary(node.id, target, node.rows, duplicates, time.perf_counter() - started)


def column_schema() -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.pg_type, description=c.description or None) for c in COLUMNS
        ]
    )


def column_lineage() -> dg.TableColumnLineage:
    """Which columns of which table asset feed each column, for the UI's column lineage."""
    return dg.TableColumnLineage(
        deps_by_column={
            c.name: [
                dg.TableColumnDep(asset_key=dg.AssetKey([GROUP, table]), column_name=column)
                for table, column in c.sources
            ]
            for c in COLUMNS
        }
    )


def completo_metadata(summary: CompletoSummary) -> dict[str, Any]:
    return {
        "dagster/row_count": dg.MetadataValue.int(summary.rows),
        "duplicate_keys": dg.MetadataValue.int(summary.duplicate_keys),
        "seconds": dg.MetadataValue.float(summary.seconds),
        "dagster/table_name": dg.MetadataValue.text(summary.target_table),
        "dagster/column_schema": column_schema(),
        "dagster/column_lineage": column_lineage(),
        "table_load_id": dg.MetadataValue.int(summary.table_load_id),
    }


@dg.asset(
    name=COMPLETO.name,
    key_prefix=[GROUP],
    group_name=GROUP,
    partitions_def=RELEASES,
    deps=[dg.AssetKey([GROUP, name]) for name in TABLES],
    description=COMPLETO.description,
    metadata={"dagster/column_schema": column_schema(), "key": list(COMPLETO.key or ())},
    kinds={"postgres"},
)
def cnpj_completo(
    context: dg.AssetExecutionContext, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Denormalize the release's ten tables into cnpj.cnpj_completo."""
    run = RunInfo(
        asset_key=context.asset_key.to_user_string(),
        partition_key=context.partition_key,
        dagster_run_id=context.run.run_id,
    )
    summary = build_completo(postgres.url(), context.partition_key, run)
    context.log.info(f"{summary.target_table}: {summary.rows:,} rows in {summary.seconds:.1f} s")
    return dg.MaterializeResult(metadata=completo_metadata(summary))
