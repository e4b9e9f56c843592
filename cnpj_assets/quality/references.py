"""What a table load checks its rows against: its release's lookup codes, the labels'."""

from __future__ import annotations

import psycopg
import pyarrow as pa
from psycopg import sql

from cnpj_assets.audit.queries import latest_completed_load
from cnpj_assets.postgres.tables import qualified
from cnpj_assets.quality.rules import label_columns
from cnpj_assets.quality.tally import TallyPlan
from cnpj_assets.read.cnaes_secundarias import SOURCE_COLUMN
from cnpj_assets.read.labels import label_set_for
from cnpj_assets.specs import ESTABELECIMENTOS, TABLES, TableSpec


def tally_plan(connection: psycopg.Connection, spec: TableSpec, release: str) -> TallyPlan | None:
    """The counts to take while loading this table, or None when there is nothing to count.

    The lookups load before the facts (the asset graph says so) and hold a few thousand
    codes, so each code column is checked against its lookup's codes as the rows go by.
    A lookup with no completed load for the release is left out; its column is then
    checked by the deep mode, in SQL, after the load.
    """
    codes: dict[str, pa.Array] = {}
    for column in spec.lookup_columns:
        lookup = TABLES[column.references or ""]
        if latest_completed_load(connection, lookup.name, release) is None:
            continue
        rows = connection.execute(
            sql.SQL(
                "SELECT DISTINCT codigo FROM {} WHERE release = %s AND codigo IS NOT NULL"
            ).format(qualified(lookup.name)),
            (release,),
        ).fetchall()
        if rows:  # a lookup whose table was dropped since is as good as not loaded
            codes[column.name] = pa.array(["", *(code for (code,) in rows)], pa.string())
    labels = {
        column: pa.array([code for code, _ in label_set.labels], pa.string())
        for column in label_columns(spec)
        if (label_set := label_set_for(spec.name, column)) is not None
    }
    secondary = SOURCE_COLUMN if spec is ESTABELECIMENTOS else None
    if not codes and not labels and spec.full_cnpj is None:
        return None
    return TallyPlan(spec, codes, labels, secondary)
