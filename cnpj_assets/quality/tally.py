"""Counts for the quality checks, taken from each batch while the reader holds it.

The reader is the only part of a load that sees every row, so what a check needs per
row is counted there, in the reader's thread: codes missing from their lookup table,
codes the layout's labels do not know, CNPJs with wrong check digits, and the secondary
activities each establishment lists (the rows `cnpj.cnaes_secundarias` must then hold).
The checks then read these counts from the audit instead of scanning the loaded table
again, which cost more than the load's own work on the same rows.

Counts are per file. Each keeps the failing values with their number of rows and the
first row holding them, up to a cap: orphan codes are few and all kept, so the check
can count distinct codes across files; invalid CNPJs are many, so only the smallest
are kept, as the sample the check shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cnpj_assets.audit import CheckCountRow
from cnpj_assets.quality.cnpj_digits import valid_cnpjs
from cnpj_assets.quality.rules import (
    CNPJ_CHECK_DIGITS,
    REFERENTIAL_INTEGRITY,
    SAMPLE_SIZE,
    SECONDARY_CODES,
    UNKNOWN_LABELS,
)
from cnpj_assets.specs import FullCnpj, TableSpec

ORPHAN_VALUES_KEPT = 1000  # distinct orphan codes kept per column and file


@dataclass
class FailedValues:
    """The smallest `cap` distinct failing values: value -> [rows, first row ordinal]."""

    cap: int
    values: dict[str, list[int]] = field(default_factory=dict)
    complete: bool = True  # every distinct failing value is kept

    def add(self, values: pa.Array, rows: np.ndarray) -> None:
        """Merge the failing values of one batch, given with their row ordinals.

        value_counts and index_in hash the batch's values in Arrow; Python then sees
        each distinct value once per batch, not each row.
        """
        counted = pc.value_counts(values)
        distinct = counted.field("values")
        firsts = rows[pc.index_in(distinct, value_set=values).to_numpy()]
        for value, count, first in zip(
            distinct.to_pylist(), counted.field("counts").to_pylist(), firsts.tolist(), strict=True
        ):
            kept = self.values.get(value)
            if kept is None:
                self.values[value] = [count, first]
            else:
                kept[0] += count
        if len(self.values) > self.cap:
            self.values = dict(sorted(self.values.items())[: self.cap])
            self.complete = False


@dataclass
class CheckCount:
    """One check on one column of one file: rows checked, rows failing, the values."""

    check: str
    column: str
    failed_values: FailedValues
    checked: int = 0
    failed: int = 0

    def add(self, checked: int, failing: pa.Array, rows: np.ndarray) -> None:
        self.checked += checked
        self.failed += len(failing)
        if len(failing):
            self.failed_values.add(failing, rows)

    def audit_row(self, line_of: Callable[[int], int]) -> CheckCountRow:
        """The audit row, each value with the physical line of the first row holding it."""
        kept = self.failed_values
        return CheckCountRow(
            self.check,
            self.column,
            self.checked,
            self.failed,
            len(kept.values) if kept.complete else None,
            [
                {"value": value, "rows": rows, "line": line_of(first)}
                for value, (rows, first) in kept.values.items()
            ],
            kept.complete,
        )


def _cnpjs(source: FullCnpj, batch: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The batch's full CNPJs and their positions in it (only the rows that hold one)."""
    columns = [batch.column(name) for name in source.columns]
    cnpjs = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "")
    positions = np.arange(batch.num_rows)
    if source.only_when is not None:
        column, value = source.only_when
        holds = pc.fill_null(pc.equal(batch.column(column), value), False)
        cnpjs = pc.filter(cnpjs, holds)
        positions = positions[holds.to_numpy(zero_copy_only=False)]
    return _flat(cnpjs), positions


@dataclass(frozen=True)
class TallyPlan:
    """What to count for one table load: its lookups' codes and labels' codes, where its
    CNPJs are, and which column lists secondary activities."""

    spec: TableSpec
    codes: dict[str, pa.Array]  # code column -> the codes its lookup has in this release
    labels: dict[str, pa.Array] = field(default_factory=dict)  # code column -> labelled codes
    secondary: str | None = None  # the comma-separated column of secondary CNAE codes

    def new_file(self) -> FileTally:
        return FileTally(self)


class FileTally:
    """The counts of one file, fed batch by batch in file order."""

    def __init__(self, plan: TallyPlan) -> None:
        self.plan = plan
        self.counts = [
            CheckCount(REFERENTIAL_INTEGRITY, column, FailedValues(ORPHAN_VALUES_KEPT))
            for column in plan.codes
        ]
        self.counts += [
            CheckCount(UNKNOWN_LABELS, column, FailedValues(ORPHAN_VALUES_KEPT))
            for column in plan.labels
        ]
        if plan.spec.full_cnpj is not None:
            self.counts.append(
                CheckCount(
                    CNPJ_CHECK_DIGITS,
                    "+".join(plan.spec.full_cnpj.columns),
                    FailedValues(SAMPLE_SIZE),
                )
            )
        if plan.secondary is not None:
            self.counts.append(
                CheckCount(SECONDARY_CODES, plan.secondary, FailedValues(SAMPLE_SIZE))
            )

    def observe(self, batch: pa.Table, first_row: int) -> None:
        """Count one batch whose first row is the file's `first_row`-th good row."""
        for count in self.counts:
            if count.check == REFERENTIAL_INTEGRITY:
                self._unknown(count, batch, first_row, self.plan.codes[count.column])
            elif count.check == UNKNOWN_LABELS:
                self._unknown(count, batch, first_row, self.plan.labels[count.column])
            elif count.check == SECONDARY_CODES:
                _secondary_codes(count, batch, first_row)
            else:
                self._check_digits(count, batch, first_row)

    def _unknown(self, count: CheckCount, batch: pa.Table, first_row: int, codes: pa.Array) -> None:
        """Codes given but not among `codes` (NULL or empty means no code was given): a
        lookup's orphans, or codes the layout gives no label.

        Counted first: a batch without unknown codes, the usual one, costs a hash lookup
        per row and nothing more.
        """
        column = batch.column(count.column)
        known = pc.is_in(column, value_set=codes)
        given = len(column) - column.null_count
        if given == (pc.sum(known).as_py() or 0):
            count.checked += given
            return
        missing = pc.and_(pc.is_valid(column), pc.invert(known))
        positions = np.flatnonzero(missing.to_numpy(zero_copy_only=False))
        count.add(given, _flat(pc.filter(column, missing)), positions + first_row)

    def _check_digits(self, count: CheckCount, batch: pa.Table, first_row: int) -> None:
        source = self.plan.spec.full_cnpj
        assert source is not None
        cnpjs, positions = _cnpjs(source, batch)
        invalid = ~valid_cnpjs(cnpjs)
        if not invalid.any():
            count.checked += len(cnpjs)
            return
        failing = pc.filter(cnpjs, pa.array(invalid))
        count.add(len(cnpjs), failing, positions[invalid] + first_row)


def _secondary_codes(count: CheckCount, batch: pa.Table, first_row: int) -> None:
    """The distinct codes each row lists (the rows cnaes_secundarias gets), and those not
    of 7 digits, by the rule of read/cnaes_secundarias.py: split on commas, trim
    spaces, drop empty pieces, one row per distinct code of an establishment.

    Arrow hashes the (row, code) pairs of the whole batch at once: no Python per row.
    """
    lists = _flat(pc.split_pattern(batch.column(count.column), ","))
    pieces = pc.utf8_trim(pc.list_flatten(lists), " ")
    given = pc.not_equal(pieces, "")
    pairs = (
        pa.table(
            {
                "row": pc.filter(pc.list_parent_indices(lists), given),
                "code": pc.filter(pieces, given),
            }
        )
        .group_by(["row", "code"])
        .aggregate([])
    )
    malformed = pc.invert(pc.match_substring_regex(pairs.column("code"), "^[0-9]{7}$"))
    rows = pc.filter(pairs.column("row"), malformed).to_numpy()
    count.add(pairs.num_rows, _flat(pc.filter(pairs.column("code"), malformed)), rows + first_row)


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
