"""Where re-audit requests are read from."""

import dagster as dg
from pydantic import Field


class AuditRequestsResource(dg.ConfigurableResource):
    """A folder of JSON request files (see ``diag_assets.core.audit.requests`` for the format)."""

    directory: str = Field(description="Folder the reaudit_requests sensor reads.")
