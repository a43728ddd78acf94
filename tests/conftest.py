"""Shared fixtures: a tiny synthetic universe that audits in seconds."""

import os

import pytest

from diag_assets.core.capture.modes import CaptureConfig
from diag_assets.core.diagnostics.probe import ProbeSettings
from diag_assets.core.folds import FoldSpec
from diag_assets.core.market_data.synthetic import SyntheticMarketData
from diag_assets.core.recipe.protocol import TrialSettings

pytest_plugins = ["tests.services"]

SERVICE_MARKERS = ("postgres", "s3")

TINY_FOLDS = FoldSpec(n_folds=5, min_train_bars=1_500, validation_bars=300)
TINY_BARS = 3_200
TINY_CAPTURE = CaptureConfig(trials=TrialSettings(n_trials=2, max_rounds=40))
TINY_PROBE = ProbeSettings(num_rounds=20, max_permutations=4, alpha=0.2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (DIAG_REQUIRE_SERVICES=1) a skipped Postgres or S3 test fails the run."""
    outcome = yield
    report = outcome.get_result()
    required = os.environ.get("DIAG_REQUIRE_SERVICES") == "1"
    if required and report.skipped and any(item.get_closest_marker(m) for m in SERVICE_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} needs a service but was skipped: {report.longrepr}"


@pytest.fixture(scope="session")
def tiny_source() -> SyntheticMarketData:
    return SyntheticMarketData(n_bars=TINY_BARS)
