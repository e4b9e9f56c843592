"""The audit trail: cascaded contexts writing table, file, batch and sub-batch rows."""

from cnpj_assets.audit.contexts import (
    ABANDONED,
    COMPLETED,
    FAILED,
    RUNNING,
    AuditNode,
    AuditService,
    CheckCountRow,
)
from cnpj_assets.audit.tree import audit_tree

__all__ = [
    "ABANDONED",
    "COMPLETED",
    "FAILED",
    "RUNNING",
    "AuditNode",
    "AuditService",
    "CheckCountRow",
    "audit_tree",
]
