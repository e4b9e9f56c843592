"""`cnpj/cnaes_secundarias`: the secondary activities as rows, and their accounting check.

Built after the publication (`defs.after_publication`: the establishments' codes only
speed reading up, so publication never waits for them): one INSERT ... SELECT from the
release's attached establishments into a fresh child, indexed and swapped in like a
table's, audited as a table_load of its own. Until then the cnpj_current view splits
the establishments' column itself, by the same rule.

The build verifies its rows before swapping them in: they must equal the distinct codes
the establishments list, as the load counted them while reading the files (or, deep, as
SQL splits them again). A mismatch is never a property of the source but a broken
build, so the child is dropped and the run fails; readers keep the view's split, which
is right by construction. The `row_accounting` check (ERROR) reports the same count.
"""

import time
import warnings
from collections.abc import Callable
from typing import Any

import dagster as dg
import psycopg

from cnpj_assets.audit.derived import audited_build
from cnpj_assets.audit.queries import latest_completed_load
from cnpj_assets.defs import plotted
from cnpj_assets.defs.after_publication import AFTER_PUBLICATION_GROUP, PUBLICATION_KEY
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.resources import LoadSettingsResource, PostgresResource
from cnpj_assets.load.loader import RunInfo
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.brief_locks import LockPolicy
from cnpj_assets.quality import deep
from cnpj_assets.quality.counted import CountedLoad
from cnpj_assets.quality.deep import SecondaryCodes
from cnpj_assets.quality.rules import ROW_ACCOUNTING
from cnpj_assets.read.cnaes_secundarias import (
    CNAES_SECUNDARIAS,
    SOURCE_COLUMN,
    ensure_parent,
    fill,
)
from cnpj_assets.specs import ESTABELECIMENTOS

ASSET_KEY = dg.AssetKey([GROUP, CNAES_SECUNDARIAS.name])


def build_cnaes_secundarias(
    database_url: str,
    release: str,
    run: RunInfo,
    policy: LockPolicy,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The release's codes in a fresh child, swapped in; an audited table_load."""
    started = time.perf_counter()
    with audited_build(
        database_url, CNAES_SECUNDARIAS.name, release, run.asset_key, run.dagster_run_id
    ) as (data, node):
        establishments = latest_completed_load(data, ESTABELECIMENTOS.name, release)
        if establishments is None:
            raise LookupError(
                f"cnaes_secundarias {release}: estabelecimentos has no completed load for "
                "this release; load it first"
            )
        ensure_parent(data)
        child = tables.create_loading_child(data, CNAES_SECUNDARIAS, release, node.id)
        try:
            node.rows = fill(database_url, child, establishments.id)
            _, codes = source_codes(data, release, establishments.id)
            if node.rows != codes.codes:
                raise AccountingMismatch(
                    f"cnaes_secundarias {release}: built {node.rows} rows against the "
                    f"{codes.codes} distinct codes of estabelecimentos.{SOURCE_COLUMN}; not "
                    "swapped in (cnpj_current.cnaes_secundarias keeps splitting the column)"
                )
            tables.build_indexes(data, child)
            target = tables.swap_in(data, child, policy, say)
        except BaseException:
            tables.drop_child(data, child)
            raise
        node.extra["target_table"] = target
    return {
        "dagster/row_count": dg.MetadataValue.int(node.rows),
        "dagster/table_name": dg.MetadataValue.text(target),
        "seconds": plotted.seconds(time.perf_counter() - started),
        "table_load_id": plotted.audit_id(node.id),
    }


class AccountingMismatch(RuntimeError):
    """A build whose rows are not the codes of its source: never swapped in."""


def source_codes(
    connection: psycopg.Connection, release: str, establishments_load: int
) -> tuple[str, SecondaryCodes]:
    """The distinct codes the establishments list, and how they were counted: by their
    load while reading the files, or, for a load from before that count existed, by
    splitting the attached establishments again in SQL."""
    counted = CountedLoad(connection, establishments_load).secondary_codes(SOURCE_COLUMN)
    if counted is not None:
        return "in-load counts", counted
    return "deep (PostgreSQL scanned)", deep.secondary_codes(connection, release)


def row_accounting(connection: psycopg.Connection, release: str) -> dg.AssetCheckResult:
    """The table's rows against the distinct codes of the establishments' source column.

    The rows are the build's audit row; the codes are what the establishments' load
    counted per file while reading them, or, when a file was not counted (a load from
    before the count existed), the attached establishments split again in SQL.
    """
    build = latest_completed_load(connection, CNAES_SECUNDARIAS.name, release)
    source = latest_completed_load(connection, ESTABELECIMENTOS.name, release)
    if build is None or source is None:
        missing = "cnaes_secundarias" if build is None else "estabelecimentos"
        return _result(False, f"no completed load of {missing} for release {release}", {})
    mode, codes = source_codes(connection, release, source.id)
    passed = build.rows == codes.codes
    description = (
        f"{build.rows} rows = the {codes.codes} distinct codes of estabelecimentos.{SOURCE_COLUMN}"
        if passed
        else f"{build.rows} rows against {codes.codes} distinct codes of "
        f"estabelecimentos.{SOURCE_COLUMN}"
    ) + (f"; {codes.malformed} code(s) not of 7 digits, kept as written" if codes.malformed else "")
    return _result(
        passed,
        description,
        {
            "mode": dg.MetadataValue.text(mode),
            "rows": dg.MetadataValue.int(build.rows),
            "source_codes": dg.MetadataValue.int(codes.codes),
            "malformed_codes": dg.MetadataValue.int(codes.malformed),
            "malformed_sample": dg.MetadataValue.json(codes.sample),
            "table_load_id": plotted.audit_id(build.id),
        },
    )


def _result(passed: bool, description: str, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=ASSET_KEY,
        check_name=ROW_ACCOUNTING,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _CHECK = dg.AssetCheckSpec(
        ROW_ACCOUNTING,
        asset=ASSET_KEY,
        description="Rows = the distinct codes of estabelecimentos.cnae_fiscal_secundaria (ERROR).",
        partitions_def=RELEASES,
    )


@dg.asset(
    name=CNAES_SECUNDARIAS.name,
    key_prefix=[GROUP],
    group_name=AFTER_PUBLICATION_GROUP,
    partitions_def=RELEASES,
    deps=[dg.AssetKey([GROUP, ESTABELECIMENTOS.name]), PUBLICATION_KEY],
    description=CNAES_SECUNDARIAS.description,
    kinds={"postgres"},
    check_specs=[_CHECK],
)
def cnaes_secundarias(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    load_settings: LoadSettingsResource,
) -> dg.MaterializeResult:
    """The release's secondary activities, one row per code, and their row accounting."""
    release = context.partition_key
    run = RunInfo(context.asset_key.to_user_string(), release, context.run.run_id)
    policy = load_settings.settings().lock_policy()
    metadata = build_cnaes_secundarias(postgres.url(), release, run, policy, context.log.info)
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        check = row_accounting(connection, release)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
