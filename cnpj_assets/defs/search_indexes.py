"""`cnpj/search_indexes`: the search indexes of a published release, after its publication.

In the `after_publication` job (defs.after_publication), after cnaes_secundarias, whose
child one of them indexes: the publication never waits for them, and `CREATE INDEX
CONCURRENTLY` keeps `cnpj_current`'s readers from waiting either (read.search_indexes).
A role that may not install `unaccent` gets no indexes (the load warned at its start,
naming the fix): the asset says so and succeeds, as search answers without them.
"""

import dagster as dg
import psycopg

from cnpj_assets.defs import plotted
from cnpj_assets.defs.after_publication import AFTER_PUBLICATION_GROUP, PUBLICATION_KEY
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.cnaes_secundarias import ASSET_KEY as CNAES_SECUNDARIAS_KEY
from cnpj_assets.defs.resources import PostgresResource
from cnpj_assets.read.search_functions import missing_right
from cnpj_assets.read.search_indexes import build_search_indexes


@dg.asset(
    name="search_indexes",
    key_prefix=[GROUP],
    group_name=AFTER_PUBLICATION_GROUP,
    partitions_def=RELEASES,
    deps=[PUBLICATION_KEY, CNAES_SECUNDARIAS_KEY],
    description=(
        "Indexes of `cnpj-assets search` on the release's children (built concurrently, "
        "after the publication); search answers without them, slower."
    ),
    kinds={"postgres"},
)
def search_indexes(
    context: dg.AssetExecutionContext, postgres: PostgresResource
) -> dg.MaterializeResult:
    with psycopg.connect(postgres.url()) as connection:
        problem = missing_right(connection)
    if problem is not None:
        context.log.warning(f"no search indexes: {problem}")
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(problem)})
    built = build_search_indexes(postgres.url(), context.partition_key, context.log.info)
    return dg.MaterializeResult(
        metadata={
            "indexes": dg.MetadataValue.md(
                "| index | seconds | MiB |\n|---|---|---|\n"
                + "\n".join(
                    f"| {b.name} | {b.seconds:.1f} | {b.bytes / 2**20:,.0f} |" for b in built
                )
            ),
            "seconds": plotted.seconds(sum(b.seconds for b in built)),
            "bytes": dg.MetadataValue.int(sum(b.bytes for b in built)),
        }
    )
