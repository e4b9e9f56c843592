"""The checks' in-load mode: what the load counted, read back from the audit.

Per file the load kept rows checked, rows failing and the failing values with the line
of their first row (`cnpj_audit.check_count`); a table's figures are their sum, its
distinct values their union. A check whose counts are missing for a file (a lookup not
loaded yet, a load from before the counts existed) gets None here and is verified by
the deep mode instead.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import psycopg

from cnpj_assets.quality.deep import CheckDigits, Orphans, SecondaryCodes
from cnpj_assets.quality.duplicate_keys import DuplicateKeys
from cnpj_assets.quality.rules import (
    CNPJ_CHECK_DIGITS,
    KEY_UNIQUENESS,
    REFERENTIAL_INTEGRITY,
    SAMPLE_SIZE,
    SECONDARY_CODES,
)

_COUNTS = """
SELECT c.check_name, c.column_name, f.zip_name, c.checked, c.failed, c.failed_values,
       c.sample, c.sample_complete
FROM cnpj_audit.check_count c LEFT JOIN cnpj_audit.file_load f ON f.id = c.file_load_id
WHERE c.table_load_id = %s ORDER BY c.id
"""


class _FileCount(NamedTuple):
    zip_name: str | None
    checked: int
    failed: int
    failed_values: int | None
    sample: list[dict[str, Any]]
    sample_complete: bool


class Sampled(NamedTuple):
    """A failing value, its rows over the kept files, and where its first row is."""

    value: str
    rows: int
    zip_name: str | None
    line: int | None


class CountedLoad:
    """The counts one table load took, by check and column."""

    def __init__(self, connection: psycopg.Connection, table_load_id: int) -> None:
        self.files = int(
            (
                connection.execute(
                    "SELECT count(*) FROM cnpj_audit.file_load WHERE table_load_id = %s",
                    (table_load_id,),
                ).fetchone()
                or (0,)
            )[0]
        )
        self._counts: dict[tuple[str, str], list[_FileCount]] = defaultdict(list)
        for check, column, *rest in connection.execute(_COUNTS, (table_load_id,)).fetchall():
            self._counts[(check, column)].append(_FileCount(*rest))

    def _per_file(self, check: str, column: str) -> list[_FileCount] | None:
        """Every file's count, or None if a file was not counted."""
        counts = self._counts.get((check, column), [])
        return counts if len(counts) == self.files else None

    def sampled(self, check: str, column: str) -> list[Sampled]:
        """The smallest failing values over the files, each at its first line in the first
        file (by name) that holds it."""
        found: dict[str, Sampled] = {}
        counts = sorted(self._counts.get((check, column), []), key=lambda c: c.zip_name or "")
        for count in counts:
            for item in count.sample:
                value = item["value"]
                seen = found.get(value)
                found[value] = (
                    seen._replace(rows=seen.rows + item["rows"])
                    if seen
                    else Sampled(value, item["rows"], count.zip_name, item["line"])
                )
        return [found[value] for value in sorted(found)[:SAMPLE_SIZE]]

    def orphans(
        self, column: str, references: str, check: str = REFERENTIAL_INTEGRITY
    ) -> Orphans | None:
        """Codes missing from `references` (a lookup, or a label domain with `check`
        UNKNOWN_LABELS), over every file."""
        counts = self._per_file(check, column)
        if counts is None:
            return None
        values = {item["value"] for count in counts for item in count.sample}
        complete = all(count.sample_complete for count in counts)
        return Orphans(
            references,
            sum(count.failed for count in counts),
            len(values) if complete else None,
            sorted(values)[:SAMPLE_SIZE],
        )

    def check_digits(self, column: str) -> CheckDigits | None:
        counts = self._per_file(CNPJ_CHECK_DIGITS, column)
        if counts is None:
            return None
        return CheckDigits(
            sum(count.checked for count in counts),
            sum(count.failed for count in counts),
            [s.value for s in self.sampled(CNPJ_CHECK_DIGITS, column)],
        )

    def secondary_codes(self, column: str) -> SecondaryCodes | None:
        counts = self._per_file(SECONDARY_CODES, column)
        if counts is None:
            return None
        return SecondaryCodes(
            sum(count.checked for count in counts),
            sum(count.failed for count in counts),
            [s.value for s in self.sampled(SECONDARY_CODES, column)],
        )

    def duplicate_keys(self, column: str) -> DuplicateKeys | None:
        """The key build's count, kept with no file."""
        counts = self._counts.get((KEY_UNIQUENESS, column))
        if not counts:
            return None
        (count,) = counts
        return DuplicateKeys(count.failed_values or 0, count.failed, count.sample)
