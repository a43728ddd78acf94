"""The one environment switch: ``DIAG_ENV`` picks the resource set; assets never branch on it.

``local`` (the default) is the embedded profile: SQLite instance storage under the project's
``DAGSTER_HOME``, artifacts in a local folder. Market data is the synthetic ``defi_top5``
universe unless ``DIAG_MARKET_DATA_DIR`` names a folder of real candles (then
``DIAG_UNIVERSE`` names that universe, default ``real``).
"""

import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from diag_assets.core.errors import DiagInputError
from resources.market_data import DirectoryMarketDataResource, SyntheticMarketDataResource
from resources.storage import LocalArtifactStore

DEFAULT_STORAGE_DIR = ".diag/artifacts"


class Environment(StrEnum):
    """Deployment profiles."""

    LOCAL = "local"


def get_env() -> Environment:
    """The profile named by ``DIAG_ENV`` (default ``local``)."""
    value = os.environ.get("DIAG_ENV", Environment.LOCAL.value)
    try:
        return Environment(value)
    except ValueError:
        valid = ", ".join(e.value for e in Environment)
        raise DiagInputError(
            f"DIAG_ENV={value!r} is not a known profile.", f"set DIAG_ENV to one of: {valid}."
        ) from None


def market_data_resource() -> SyntheticMarketDataResource | DirectoryMarketDataResource:
    """Synthetic defi_top5 by default; a folder of real candles when DIAG_MARKET_DATA_DIR is set."""
    directory = os.environ.get("DIAG_MARKET_DATA_DIR")
    if not directory:
        return SyntheticMarketDataResource()
    return DirectoryMarketDataResource(
        directory=directory,
        universe=os.environ.get("DIAG_UNIVERSE", "real"),
        timeframe=os.environ.get("DIAG_TIMEFRAME", "1h"),
    )


def local_resources() -> dict[str, Any]:
    """The embedded profile's resources."""
    root = Path(os.environ.get("DIAG_STORAGE_DIR", DEFAULT_STORAGE_DIR)).resolve()
    return {"market_data": market_data_resource(), "artifacts": LocalArtifactStore(root=str(root))}


resources_by_env: dict[Environment, Callable[[], dict[str, Any]]] = {
    Environment.LOCAL: local_resources,
}


def resources_for_current_env() -> dict[str, Any]:
    """The resource set of the profile ``DIAG_ENV`` selects."""
    return resources_by_env[get_env()]()
