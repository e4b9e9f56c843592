"""`cnpj/cnpj_completo`: the asset that makes a release readable in `cnpj.cnpj_completo`.

The view (read/completo_view.py) costs nothing to create, so the asset only ensures it
and records the build in the audit; a table copy of one release
(`cnpj.cnpj_completo_<YYYY_MM>`, for exports and full scans) is built only on demand,
with the asset's `materialize` setting. Its metadata carries the column schema and the
column lineage derived from the same column list as the view.
"""

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from cnpj_assets.audit.derived import audited_build
from cnpj_assets.audit.queries import latest_completed_load
from cnpj_assets.defs import plotted
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.resources import PostgresResource
from cnpj_assets.load.loader import RunInfo
from cnpj_assets.postgres import tables
from cnpj_assets.read.completo_view import COLUMNS, COMPLETO, VIEW, copy_name, ensure_view
from cnpj_assets.specs import ESTABELECIMENTOS, TABLES


def materialize_copy(connection: psycopg.Connection, release: str, table_load_id: int) -> int:
    """Write the release's rows of the view into a table of their own; return duplicate keys.

    The copy is built under a name of its own load, indexed like the establishments,
    then renamed into place in one transaction, so a reader of the copy never sees it
    half built and a failed build leaves the previous copy as it was.
    """
    building = tables.LoadingChild(COMPLETO, release, f"{copy_name(release)}_load{table_load_id}")
    final = tables.qualified(copy_name(release))
    connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(building.identifier))
    try:
        connection.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {} WHERE release = %s").format(
                building.identifier, VIEW
            ),
            (release,),
        )
        duplicates = tables.build_indexes(connection, building).values
        with connection.transaction():
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(final))
            connection.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    building.identifier, sql.Identifier(copy_name(release))
                )
            )
    except BaseException:
        tables.drop_child(connection, building)
        raise
    return duplicates


@dataclass(frozen=True)
class CompletoSummary:
    """What a build did: the audit row, the table or view to read and its numbers."""

    table_load_id: int
    target_table: str
    rows: int
    duplicate_keys: int
    seconds: float
    materialized: bool


def build_completo(
    database_url: str, release: str, run: RunInfo, materialize: bool = False
) -> CompletoSummary:
    """Make the release readable in cnpj_completo (and copy it to a table if asked), audited.

    The build is a table_load of its own (`audited_build`). The view has one row per
    establishment, so its rows and repeated keys are those of the
    release's establishments load: no scan is needed to count them.
    """
    started = time.perf_counter()
    with audited_build(database_url, COMPLETO.name, release, run.asset_key, run.dagster_run_id) as (
        data,
        node,
    ):
        establishments = latest_completed_load(data, ESTABELECIMENTOS.name, release)
        if establishments is None:
            raise LookupError(
                f"cnpj_completo {release}: estabelecimentos has no completed load for "
                "this release; load it first"
            )
        ensure_view(data)
        node.rows, duplicates = establishments.rows, establishments.duplicate_keys
        target = f"{tables.SCHEMA}.{COMPLETO.name}"
        if materialize:
            duplicates = materialize_copy(data, release, node.id)
            target = f"{tables.SCHEMA}.{copy_name(release)}"
        node.extra.update({"target_table": target, "duplicate_keys": duplicates})
    return CompletoSummary(
        node.id, target, node.rows, duplicates, time.perf_counter() - started, materialize
    )


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
        "seconds": plotted.seconds(summary.seconds),
        "dagster/table_name": dg.MetadataValue.text(summary.target_table),
        "dagster/column_schema": column_schema(),
        "dagster/column_lineage": column_lineage(),
        "table_load_id": plotted.audit_id(summary.table_load_id),
        "materialized": dg.MetadataValue.bool(summary.materialized),
    }


class CompletoConfig(dg.Config):
    """Set `materialize` to also copy the release into a table of its own (exports, scans)."""

    materialize: bool = False


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
    context: dg.AssetExecutionContext, postgres: PostgresResource, config: CompletoConfig
) -> dg.MaterializeResult:
    """The release in the cnpj.cnpj_completo view, and in a table copy if asked."""
    run = RunInfo(
        asset_key=context.asset_key.to_user_string(),
        partition_key=context.partition_key,
        dagster_run_id=context.run.run_id,
    )
    summary = build_completo(postgres.url(), context.partition_key, run, config.materialize)
    context.log.info(f"{summary.target_table}: {summary.rows:,} rows in {summary.seconds:.1f} s")
    return dg.MaterializeResult(metadata=completo_metadata(summary))
