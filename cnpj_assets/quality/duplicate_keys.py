"""Key values that repeat in a table: counted when the key is built, or by a deep check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cnpj_assets.audit import CheckCountRow
from cnpj_assets.quality.rules import KEY_UNIQUENESS, SAMPLE_SIZE


@dataclass(frozen=True)
class DuplicateKeys:
    """How a key repeats: the values, the rows beyond each value's first, a sample."""

    values: int = 0
    extra_rows: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)  # most repeated first

    def audit_row(self, key: Sequence[str], rows: int) -> CheckCountRow:
        """The key_uniqueness count of a table load of `rows` rows."""
        return CheckCountRow(
            KEY_UNIQUENESS,
            ",".join(key),
            rows,
            self.extra_rows,
            self.values,
            self.sample,
            self.values <= len(self.sample),
        )


def count_duplicate_keys(
    connection: psycopg.Connection,
    rows: sql.Composable,
    key: Sequence[str],
    params: dict[str, Any] | None = None,
) -> DuplicateKeys:
    """Repeated values of `key` among `rows` (a FROM item, with its `params`), in one scan."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in key)
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(c)) for c in key
    )
    row = connection.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(n - 1), 0), "
            "(array_agg(jsonb_build_object('value', jsonb_build_object({pairs}), 'rows', n) "
            "ORDER BY n DESC, {columns}))[1:%(sample)s] "
            "FROM (SELECT {columns}, count(*) AS n FROM {rows} GROUP BY {columns} "
            "HAVING count(*) > 1) AS d"
        ).format(pairs=pairs, columns=columns, rows=rows),
        {**(params or {}), "sample": SAMPLE_SIZE},
    ).fetchone()
    if row is None:
        return DuplicateKeys()
    return DuplicateKeys(int(row[0]), int(row[1]), list(row[2] or []))
