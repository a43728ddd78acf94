"""Assets called directly, with build_asset_context."""

import dagster as dg
import pytest

from diag_assets.audit.diagnostics import AuditRunConfig, SuiteRunConfig
from diag_assets.audit.run_results import observed_metadata
from diag_assets.capture.assets import CaptureRunConfig
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.verdicts import AnchorResult, S40Verdict
from diag_assets.core.names import CAPTURED_FOLD, MARKET_BARS, S22A1_ANCHOR, S40_VERDICT
from diag_assets.partitions import cell_from_partition_key, cell_partition_key
from tests.dagster.conftest import APPROVED
from tests.fixtures.audit import (
    anchor_and_consumers,
    captured_fold,
    market_bars,
    observe,
    s23_drift,
)

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
KEY = cell_partition_key(CELL)
TINY_CAPTURE = CaptureRunConfig(n_trials=2, max_rounds=40)
TINY_AUDIT = AuditRunConfig(num_rounds=20, max_permutations=4, alpha=0.2)


def test_partition_key_and_cell_ref_round_trip():
    assert str(KEY) == "fold-3|UNIUSDC"
    assert cell_from_partition_key(str(KEY), "defi_top5") == CELL
    assert cell_from_partition_key(KEY, "defi_top5") == CELL


def _value(metadata_value):
    return getattr(metadata_value, "value", metadata_value)


def test_market_bars_records_hash_and_gaps(resources, instance):
    first = observed_metadata(observe(market_bars, resources, instance, "UNIUSDC"), MARKET_BARS)
    again = observed_metadata(observe(market_bars, resources, instance, "UNIUSDC"), MARKET_BARS)
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(MARKET_BARS), asset_partitions=["UNIUSDC"]),
        limit=2,
    ).records
    versions = [r.asset_observation.tags["dagster/data_version"] for r in records]
    assert versions == [first["canonical_hash"]] * 2 and len(versions[0]) == 32
    assert first["bars"] == 3_200
    assert first["gaps"] >= 1  # the generator plants maintenance gaps
    assert again["canonical_hash"] == first["canonical_hash"]


def test_an_observation_without_a_partition_observes_every_registered_symbol(resources, instance):
    instance.delete_dynamic_partition("symbols", "BTCUSDT")
    instance.delete_dynamic_partition("symbols", "ETHUSDT")
    result = observe(market_bars, resources, instance)
    assert {e.partition for e in result.get_asset_observation_events()} == {"UNIUSDC", "OPUSDC"}


def test_an_observation_of_symbols_the_source_does_not_serve_fails_naming_them(resources, instance):
    # The instance registers two symbols the synthetic universe does not serve.
    result = observe(market_bars, resources, instance, raise_on_error=False)
    assert not result.success
    assert result.get_asset_observation_events() == []  # all or none in one run
    node = result.failure_data_for_node("market_bars")
    assert node is not None and node.user_failure_data is not None
    failure = node.user_failure_data
    description = failure.description or ""
    assert "The bars of 2 symbol(s) do not validate" in description
    assert "BTCUSDT: Symbol 'BTCUSDT' is not in universe 'defi_top5'" in description
    assert "the schedule observes each symbol in a run of its own" in description
    refused = failure.metadata["refused"].value
    assert isinstance(refused, dict) and set(refused) == {"BTCUSDT", "ETHUSDT"}


def test_audit_assets_by_direct_call(resources, instance):
    artifacts = resources["artifacts"]
    with dg.build_asset_context(
        partition_key=KEY, instance=instance, run_tags=APPROVED, resources=resources
    ) as context:
        # The capture yields its approval check's result, then the capture itself.
        approval, capture = list(captured_fold(context, TINY_CAPTURE))
        assert isinstance(approval, dg.AssetCheckResult) and approval.passed
        assert approval.check_name == "cold_capture_approved"
        results = {
            result.asset_key.to_user_string(): result
            for result in anchor_and_consumers(context, TINY_AUDIT)
        }
        drift = s23_drift(context, SuiteRunConfig())
    manifest = artifacts.results().read(CAPTURED_FOLD, CELL, CaptureManifest)
    assert manifest is not None
    assert capture.data_version == dg.DataVersion(manifest.content_hash)
    assert capture.metadata["rows"].value == manifest.rows > 0
    assert capture.metadata["trials"].value == 2

    assert set(results) == {"s22a1_anchor", "s40_verdict", "s27_calibration"}
    anchor = artifacts.results().read(S22A1_ANCHOR, CELL, AnchorResult)
    assert anchor is not None and anchor.capture_content_hash == manifest.content_hash
    assert results["s22a1_anchor"].metadata["best_iter"].value == anchor.best_iter

    verdict = artifacts.results().read(S40_VERDICT, CELL, S40Verdict)
    assert verdict is not None and verdict.certification is Certification.CERTIFIED
    assert _value(results["s40_verdict"].metadata["certification"]) == "CERTIFIED"
    assert results["s40_verdict"].data_version == dg.DataVersion(verdict.content_hash())
    assert _value(results["s27_calibration"].metadata["certification"]) == "CERTIFIED"
    assert _value(drift.metadata["certification"]) == "CERTIFIED"


def test_diagnostics_refuse_to_run_without_a_captured_fold(resources, instance):
    with (
        dg.build_asset_context(
            partition_key=KEY, instance=instance, resources=resources
        ) as context,
        pytest.raises(dg.Failure, match="no captured fold yet"),
    ):
        list(anchor_and_consumers(context, TINY_AUDIT))
