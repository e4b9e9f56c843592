"""The quality checks by name, which of them apply to a table, and which block publication."""

from __future__ import annotations

from cnpj_assets.read.labels import label_set_for
from cnpj_assets.specs import TableSpec

ROW_ACCOUNTING = "row_accounting"
KEY_UNIQUENESS = "key_uniqueness"
REFERENTIAL_INTEGRITY = "referential_integrity"
REJECT_RATIO = "reject_ratio"
CNPJ_CHECK_DIGITS = "cnpj_check_digits"
ROW_COUNT_DRIFT = "row_count_drift"
UNKNOWN_LABELS = "unknown_labels"
SECONDARY_CODES = "secondary_codes"  # the secondary CNAE codes counted during the read
SAMPLE_SIZE = 10  # offending values a check shows


def check_names(spec: TableSpec) -> list[str]:
    """The checks that apply to a table: a key, references or full CNPJs make theirs; the
    drift guard compares a monthly table with the last published release's."""
    names = [ROW_ACCOUNTING, REJECT_RATIO]
    if spec.monthly:
        names.append(ROW_COUNT_DRIFT)
    if spec.key:
        names.append(KEY_UNIQUENESS)
    if spec.referenced_tables:
        names.append(REFERENTIAL_INTEGRITY)
    if spec.full_cnpj is not None:
        names.append(CNPJ_CHECK_DIGITS)
    if label_columns(spec):
        names.append(UNKNOWN_LABELS)
    return names


def label_columns(spec: TableSpec) -> tuple[str, ...]:
    """The table's code columns that the layout labels (read/labels.py)."""
    return tuple(c for c in spec.column_names if label_set_for(spec.name, c) is not None)


BLOCKING = (ROW_ACCOUNTING, REJECT_RATIO, ROW_COUNT_DRIFT)
"""The ERROR-level checks: a release fails one of them, it is not published."""
