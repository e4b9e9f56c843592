"""Zip member -> scratch file -> DuckDB typed read -> Arrow batches with line lineage."""

from cnpj_assets.reader.member import ExtractedMember, ExtractLimits, MemberError, extract_member
from cnpj_assets.reader.reader import (
    AccountingError,
    Batch,
    FileRead,
    ReaderSettings,
    Reject,
    RowSpan,
    SubBatch,
    read_member,
)

__all__ = [
    "AccountingError",
    "Batch",
    "ExtractLimits",
    "ExtractedMember",
    "FileRead",
    "MemberError",
    "ReaderSettings",
    "Reject",
    "RowSpan",
    "SubBatch",
    "extract_member",
    "read_member",
]
