"""One Dagster asset per CNPJ table, partitioned by release.

Facts depend on the lookups (and on empresas) they reference, so the asset graph is
the lineage graph. Each materialization returns the audit tree and the numbers the UI
plots as metadata.
"""

import json
from typing import Any

import dagster as dg

from cnpj_assets.defs import plotted
from cnpj_assets.defs.job_executor import pod_size, release_executor
from cnpj_assets.defs.resources import LandingResource, LoadSettingsResource, PostgresResource
from cnpj_assets.load.loader import RunInfo, TableLoader, TableLoadSummary
from cnpj_assets.runs.run_log import RunLogOrStderr
from cnpj_assets.runs.stopping import stop_request
from cnpj_assets.specs import TABLES, TableSpec

RELEASES = dg.DynamicPartitionsDefinition(name="cnpj_release")
GROUP = "cnpj"
LOAD_POOL = "cnpj_postgres"  # bounds the fact loads hitting PostgreSQL at once, across runs
LARGEST_FIRST = ("simples", "socios", "empresas", "estabelecimentos")  # ascending priority


def column_schema(spec: TableSpec) -> dg.TableSchema:
    partition = "release partition, YYYY-MM" if spec.monthly else "snapshot, YYYY-MM-DD"
    columns = [dg.TableColumn("release", "text", description=partition)]
    columns += [
        dg.TableColumn(c.name, c.kind.pg_type, description=c.description or None)
        for c in spec.columns
    ]
    columns.append(
        dg.TableColumn("_subbatch_id", "bigint", description="cnpj_audit.subbatch_load.id")
    )
    return dg.TableSchema(columns=columns)


def _files_markdown(tree: dict[str, Any]) -> str:
    lines = [
        "| zip | member | sha256 | bytes | rows | rejects | seconds |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for f in tree["files"]:
        sha = (f["sha256"] or "")[:16]
        lines.append(
            f"| {f['zip_name']} | {f['member_name']} | `{sha}…` | {f['member_bytes'] or 0:,} "
            f"| {f['rows']:,} | {f['rejects']:,} | {f['seconds'] or 0:.2f} |"
        )
    return "\n".join(lines)


def materialization_metadata(spec: TableSpec, summary: TableLoadSummary) -> dict[str, Any]:
    """Top-level numbers first (the UI plots them), then the tables and the tree."""
    tree = summary.tree
    seconds = float(tree["seconds"] or 0)
    batches = sum(len(f["batches"]) for f in tree["files"])
    subbatches = sum(b["subbatches"] for f in tree["files"] for b in f["batches"])
    return {
        "dagster/row_count": dg.MetadataValue.int(tree["rows"]),
        "files": dg.MetadataValue.int(len(tree["files"])),
        "batches": dg.MetadataValue.int(batches),
        "subbatches": dg.MetadataValue.int(subbatches),
        "rejected_rows": dg.MetadataValue.int(tree["rejects"]),
        "duplicate_keys": dg.MetadataValue.int(tree["duplicate_keys"] or 0),
        "seconds": plotted.seconds(seconds),
        "rows_per_second": plotted.rate(tree["rows"], seconds),
        "index_seconds": plotted.seconds(float(tree["index_seconds"] or 0)),
        "bytes_read": dg.MetadataValue.int(tree["bytes_read"]),
        "files_loaded": dg.MetadataValue.md(_files_markdown(tree)),
        "audit_tree": dg.MetadataValue.json(json.loads(json.dumps(tree, default=str))),
        "dagster/column_schema": column_schema(spec),
        "dagster/table_name": dg.MetadataValue.text(summary.target_table),
        "table_load_id": plotted.audit_id(summary.table_load_id),
    }


def step_tags(spec: TableSpec) -> dict[str, Any]:
    """The largest tables start first; on Kubernetes, a fact's pod gets two cores and 2 GiB
    (DuckDB's 512 MB, batches read ahead, the COPY streams), a lookup's a quarter core."""
    tags = pod_size("250m", "768Mi") if spec.is_lookup else pod_size("2", "2Gi")
    if spec.name in LARGEST_FIRST:
        tags["dagster/priority"] = str(LARGEST_FIRST.index(spec.name) + 1)
    return tags


def build_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """The asset `cnpj/<table>`: load the partition's release of this table."""

    @dg.asset(
        name=spec.name,
        key_prefix=[GROUP],
        group_name=GROUP,
        partitions_def=RELEASES,
        deps=[dg.AssetKey([GROUP, "release_files"])]
        + [dg.AssetKey([GROUP, lookup]) for lookup in spec.referenced_lookups],
        description=spec.description + (f"\n\n{spec.notes}" if spec.notes else ""),
        metadata={"dagster/column_schema": column_schema(spec), "key": list(spec.key or ())},
        kinds={"postgres", "duckdb"},
        pool=None if spec.is_lookup else LOAD_POOL,
        op_tags=step_tags(spec),
    )
    def _table_asset(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        landing: LandingResource,
        load_settings: LoadSettingsResource,
    ) -> dg.MaterializeResult:
        release = landing.release(context.partition_key)
        stop = stop_request(context.run.run_id)
        loader = TableLoader(
            postgres.url(),
            load_settings.settings(),
            progress=RunLogOrStderr(context.log, stop),
            stop=stop,
        )
        run = RunInfo(
            asset_key=context.asset_key.to_user_string(),
            partition_key=context.partition_key,
            dagster_run_id=context.run.run_id,
        )
        summary = loader.load(spec, release, run)
        return dg.MaterializeResult(metadata=materialization_metadata(spec, summary))

    return _table_asset


TABLE_ASSETS = [build_table_asset(spec) for spec in TABLES.values()]

load_release_job = dg.define_asset_job(
    "load_release",
    selection=dg.AssetSelection.groups(GROUP),
    description="Load every table of one CNPJ release, check it and build cnpj_completo.",
    executor_def=release_executor(),
)
