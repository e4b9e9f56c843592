"""`cnpj/cnpj_current`: publish a loaded release, then keep the disk in bounds.

The last step of `load_release`. It reads the ERROR-level checks of every table from
the audit (row accounting, reject ratio, drift against the last published release),
publishes the release if all pass (`releases.publication`), then drops the releases
beyond `keep_releases` (`releases.retention`). A refused release fails this step with
the checks that failed: the run is red, the release stays loaded and queryable by its
partition, and `cnpj_current` does not move. `force_reason` publishes it anyway, and
is recorded with the failures it overrode.
"""

import dagster as dg
import psycopg

from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.checks import CheckMode, QualityConfig, evaluate
from cnpj_assets.defs.resources import LoadSettingsResource, PostgresResource
from cnpj_assets.quality.rules import BLOCKING
from cnpj_assets.read.completo_view import COMPLETO
from cnpj_assets.releases.publication import CURRENT_SCHEMA, PUBLISHED, REFUSED, publish
from cnpj_assets.releases.retention import retain
from cnpj_assets.specs import TABLES


class PublishConfig(QualityConfig):
    """The ERROR checks' thresholds (as in the checks' config), retention, and forcing."""

    keep_releases: int = 3  # published releases kept in PostgreSQL (newer unpublished stay)
    force_reason: str = ""  # publish although checks failed; recorded with the failures


def release_failures(
    connection: psycopg.Connection, release: str, config: QualityConfig
) -> list[str]:
    """What keeps the release from publication: tables not loaded, ERROR checks failed."""
    gate = QualityConfig(
        max_reject_ratio=config.max_reject_ratio,
        max_shrink=config.max_shrink,
        max_growth=config.max_growth,
        lookup_max_change=config.lookup_max_change,
        mode=CheckMode.IN_LOAD,
    )
    return [
        f"{spec.name} {result.check_name}: {result.description}"
        for spec in TABLES.values()
        for result in evaluate(connection, spec, release, BLOCKING, gate)
        if not result.passed
    ]


@dg.asset(
    name="cnpj_current",
    key_prefix=[GROUP],
    group_name=GROUP,
    partitions_def=RELEASES,
    deps=[dg.AssetKey([GROUP, name]) for name in (*TABLES, COMPLETO.name)],
    description=(
        f"The published release: the {CURRENT_SCHEMA} views show it. Published only when "
        "every table loaded and every ERROR-level check passed; published releases beyond "
        "keep_releases, and unpublished ones older than it, are then dropped."
    ),
    kinds={"postgres"},
)
def cnpj_current(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    load_settings: LoadSettingsResource,
    config: PublishConfig,
) -> dg.MaterializeResult:
    release = context.partition_key
    policy = load_settings.settings().lock_policy()
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        ensure_audit_schema(connection)
        failures = release_failures(connection, release, config)
        publication = publish(
            connection,
            release,
            failures,
            context.run.run_id,
            policy,
            config.force_reason or None,
            context.log.info,
        )
        if publication.outcome == REFUSED:
            raise dg.Failure(
                description=f"{release} not published: {publication.reason}",
                metadata={"failures": dg.MetadataValue.json(failures)},
            )
        dropped = (
            retain(connection, config.keep_releases, release, policy, context.log.info)
            if publication.outcome == PUBLISHED
            else []
        )
    context.log.info(f"{release}: {publication.outcome}: {publication.reason}")
    return dg.MaterializeResult(
        metadata={
            "outcome": dg.MetadataValue.text(publication.outcome),
            "published": dg.MetadataValue.bool(publication.outcome == PUBLISHED),
            "previous_release": dg.MetadataValue.text(publication.previous or ""),
            "reason": dg.MetadataValue.text(publication.reason),
            "forced": dg.MetadataValue.bool(publication.forced),
            "dropped_releases": dg.MetadataValue.json([d.release for d in dropped]),
            "freed_gib": dg.MetadataValue.float(
                round(sum(d.freed_bytes for d in dropped) / 2**30, 3)
            ),
        }
    )
