"""The audit trail: cascaded contexts writing table, file, batch and sub-batch rows."""

from cnpj_assets.audit.contexts import COMPLETED, FAILED, RUNNING, AuditNode, AuditService
from cnpj_assets.audit.tree import audit_tree

__all__ = ["COMPLETED", "FAILED", "RUNNING", "AuditNode", "AuditService", "audit_tree"]
