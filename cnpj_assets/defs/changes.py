"""`cnpj/changes`: what changed since the release loaded before, and whether it is plausible.

Built after the four fact tables of the release, with the indexes their loads made
(`releases.changes`), into a fresh child of `cnpj.changes` swapped in like a table's:
a rebuild replaces the release's changes exactly. Its metadata counts each kind (the UI
plots them release after release) and lists the municipalities with the most openings
and closings. Its check warns when a kind touches more of a table than a month
plausibly does.
"""

import time
import warnings
from collections.abc import Callable
from typing import Any

import dagster as dg
import psycopg

from cnpj_assets.audit.derived import audited_build
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.resources import LoadSettingsResource, PostgresResource
from cnpj_assets.postgres import tables
from cnpj_assets.postgres.brief_locks import LockPolicy
from cnpj_assets.releases.changes import CHANGES, COMPARISONS, ensure_parent, fill, previous_release

CHANGE_RATES = "change_rates"
TOP_MUNICIPALITIES = 10

_COUNTS = """
SELECT table_name, kind, count(*) FROM cnpj.changes WHERE release = %s GROUP BY 1, 2 ORDER BY 1, 2
"""

_MUNICIPALITIES = """
WITH events AS (
    SELECT new_values ->> 'municipio' AS municipio, 1 AS openings, 0 AS closings
    FROM cnpj.changes WHERE release = %(release)s AND kind = 'opened'
    UNION ALL
    SELECT old_values ->> 'municipio', 0, 1
    FROM cnpj.changes WHERE release = %(release)s AND kind = 'gone'
    UNION ALL
    SELECT e.municipio, 0, 1
    FROM cnpj.changes c JOIN cnpj.estabelecimentos e
      ON e.release = c.release AND e.cnpj_basico || e.cnpj_ordem || e.cnpj_dv = c.cnpj
    WHERE c.release = %(release)s AND c.kind = 'status_changed'
      AND c.new_values ->> 'situacao_cadastral' = '08'
)
SELECT ev.municipio, m.descricao, sum(openings), sum(closings)
FROM events ev
LEFT JOIN cnpj.municipios m ON m.release = %(release)s AND m.codigo = ev.municipio
GROUP BY 1, 2 ORDER BY sum(openings) + sum(closings) DESC, 1 LIMIT %(limit)s
"""


def _metadata(connection: psycopg.Connection, release: str, previous: str | None) -> dict[str, Any]:
    counts = connection.execute(_COUNTS, (release,)).fetchall()
    metadata: dict[str, Any] = {
        "previous_release": dg.MetadataValue.text(previous or "none loaded"),
        "dagster/row_count": dg.MetadataValue.int(sum(n for *_, n in counts)),
    }
    metadata |= {f"{table}.{kind}": dg.MetadataValue.int(n) for table, kind, n in counts}
    rows = connection.execute(
        _MUNICIPALITIES, {"release": release, "limit": TOP_MUNICIPALITIES}
    ).fetchall()
    table = ["| municipio | name | openings | closings |", "|---|---|---:|---:|"]
    table += [
        f"| {code} | {name or ''} | {opened} | {closed} |" for code, name, opened, closed in rows
    ]
    metadata["top_municipalities"] = dg.MetadataValue.md("\n".join(table))
    return metadata


def build_changes(
    database_url: str,
    release: str,
    run_id: str,
    policy: LockPolicy,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The release's changes in a fresh child, swapped in; an audited table_load."""
    started = time.perf_counter()
    with audited_build(database_url, CHANGES.name, release, f"{GROUP}/{CHANGES.name}", run_id) as (
        data,
        node,
    ):
        ensure_parent(data)
        previous = previous_release(data, release)
        child = tables.create_loading_child(data, CHANGES, release, node.id)
        try:
            if previous is not None:
                fill(database_url, child, previous)
            tables.build_indexes(data, child)
            target = tables.swap_in(data, child, policy, say)
        except BaseException:
            tables.drop_child(data, child)
            raise
        metadata = _metadata(data, release, previous)
        node.rows = int(metadata["dagster/row_count"].value)
        node.extra["target_table"] = target
    metadata["seconds"] = dg.MetadataValue.float(round(time.perf_counter() - started, 2))
    metadata["dagster/table_name"] = dg.MetadataValue.text(target)
    return metadata


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _CHECK = dg.AssetCheckSpec(
        CHANGE_RATES,
        asset=dg.AssetKey([GROUP, CHANGES.name]),
        description="Each kind of change within a plausible share of its table (WARN).",
        partitions_def=RELEASES,
    )


_BASES = """
SELECT table_name, rows FROM cnpj_audit.table_load
WHERE release = %s AND status = 'COMPLETED' AND id IN (
    SELECT max(id) FROM cnpj_audit.table_load WHERE release = %s AND status = 'COMPLETED'
    GROUP BY table_name)
"""


def change_rates(
    connection: psycopg.Connection, release: str, max_share: float
) -> dg.AssetCheckResult:
    """Each kind's rows over its table's rows in the release, against `max_share`."""
    bases = dict(connection.execute(_BASES, (release, release)).fetchall())
    counts = connection.execute(_COUNTS, (release,)).fetchall()
    shares = {f"{table}.{kind}": n / bases[table] for table, kind, n in counts if bases.get(table)}
    high = {name: share for name, share in shares.items() if share > max_share}
    description = (
        f"every kind of change under {max_share:.0%} of its table"
        if not high
        else "implausibly many: "
        + ", ".join(f"{name} {share:.1%}" for name, share in sorted(high.items()))
    )
    return dg.AssetCheckResult(
        check_name=CHANGE_RATES,
        asset_key=dg.AssetKey([GROUP, CHANGES.name]),
        passed=not high,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "shares": dg.MetadataValue.json({k: round(v, 6) for k, v in shares.items()}),
            "max_share": dg.MetadataValue.float(max_share),
        },
    )


class ChangeRatesConfig(dg.Config):
    """A month moves well under 1% of any table (cnpj-layout.md): 5% of one kind is a
    release worth a look (a partial file, a re-keyed table) before it is believed."""

    max_share: float = 0.05


@dg.asset(
    name=CHANGES.name,
    key_prefix=[GROUP],
    group_name=GROUP,
    partitions_def=RELEASES,
    deps=[dg.AssetKey([GROUP, c.spec.name]) for c in COMPARISONS],
    description=CHANGES.description,
    kinds={"postgres"},
    check_specs=[_CHECK],
)
def changes(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    load_settings: LoadSettingsResource,
    config: ChangeRatesConfig,
) -> dg.MaterializeResult:
    """The release's changes since the release loaded before it, and their plausibility."""
    release = context.partition_key
    metadata = build_changes(
        postgres.url(),
        release,
        context.run.run_id,
        load_settings.settings().lock_policy(),
        context.log.info,
    )
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        check = change_rates(connection, release, config.max_share)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
