"""The quality checks by name, which of them apply to a table, and which block publication."""

from __future__ import annotations

from cnpj_assets.specs import TableSpec

ROW_ACCOUNTING = "row_accounting"
KEY_UNIQUENESS = "key_uniqueness"
REFERENTIAL_INTEGRITY = "referential_integrity"
REJECT_RATIO = "reject_ratio"
CNPJ_CHECK_DIGITS = "cnpj_check_digits"
ROW_COUNT_DRIFT = "row_count_drift"
SAMPLE_SIZE = 10  # offending values a check shows


def check_names(spec: TableSpec) -> list[str]:
    """The checks that apply to a table: a key, references or full CNPJs make theirs."""
    names = [ROW_ACCOUNTING, REJECT_RATIO, ROW_COUNT_DRIFT]
    if spec.key:
        names.append(KEY_UNIQUENESS)
    if spec.referenced_tables:
        names.append(REFERENTIAL_INTEGRITY)
    if spec.full_cnpj is not None:
        names.append(CNPJ_CHECK_DIGITS)
    return names


BLOCKING = (ROW_ACCOUNTING, REJECT_RATIO, ROW_COUNT_DRIFT)
"""The ERROR-level checks: a release fails one of them, it is not published."""
