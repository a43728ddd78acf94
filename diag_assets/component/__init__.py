from diag_assets.component.component import AuditComponent

__all__ = ["AuditComponent"]
