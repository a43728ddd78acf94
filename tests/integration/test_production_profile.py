"""The audit graph on the production backends: PostgreSQL catalog and leases, S3 artifacts."""

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from diag_assets.audit.run_results import materialized_metadata
from diag_assets.core.cells import CellRef
from diag_assets.core.storage.catalog.catalog import PostgresCatalog
from diag_assets.partitions import cell_partition_key
from resources.environment import build_production_resources
from resources.s3_storage import S3ArtifactStore
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, tiny_market_data
from tests.fixtures.audit import anchor_and_consumers, captured_fold
from tests.services import s3_client

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

AUDIT = [captured_fold, anchor_and_consumers]
KEY = cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-2"))


def production_resources(endpoint: str, bucket: str, dsn: str, tmp_path) -> dict:
    artifacts = S3ArtifactStore(
        s3=S3Resource(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            max_attempts=1,
        ),
        bucket=bucket,
        connect_timeout_s=1,
        read_timeout_s=5,
    )
    return build_production_resources(
        artifacts,
        dsn,
        market_data=tiny_market_data(),
        lease_wait_s=60,
        requests_dir=tmp_path / "requests",
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["UNIUSDC"])
        yield instance


_metadata = materialized_metadata


def test_cold_then_warm_audit_on_postgres_and_s3(
    s3_endpoint, s3_bucket, postgres_dsn, instance, tmp_path
):
    resources = production_resources(s3_endpoint, s3_bucket, postgres_dsn, tmp_path)
    cold = dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config=TINY_RUN_CONFIG,
        tags=APPROVED,
    )
    cold_capture = _metadata(cold, "captured_fold")
    assert cold_capture["cache"] == "MISS"
    assert cold_capture["artifact_uri"].startswith(f"s3://{s3_bucket}/")
    warm = dg.materialize(
        AUDIT, resources=resources, instance=instance, partition_key=KEY, run_config=TINY_RUN_CONFIG
    )
    warm_capture = _metadata(warm, "captured_fold")
    assert warm_capture["cache"] == "HIT" and warm_capture["producing_run_id"] == cold.run_id
    # Warm reads reproduce: the warm audit's hashes and verdict equal the cold ones.
    for field in ("x_hash", "y_hash", "trial_log_hash", "content_hash"):
        assert warm_capture[field] == cold_capture[field]
    assert _metadata(warm, "s40_verdict")["verdict"] == _metadata(cold, "s40_verdict")[
        "verdict"
    ] | {"elapsed_s": _metadata(warm, "s40_verdict")["verdict"]["elapsed_s"]}
    with PostgresCatalog(postgres_dsn) as catalog:
        (entry,) = catalog.entries()
        assert entry.use_count == 1 and entry.producing_run_id == cold.run_id


def test_the_shared_fixture_set_and_the_release_gate_on_postgres_and_s3(
    s3_endpoint, s3_bucket, postgres_dsn, instance, tmp_path
):
    from tests.fixtures.audit import g_c4_invariance, g_c4b_seam, lever3_release_gate

    resources = production_resources(s3_endpoint, s3_bucket, postgres_dsn, tmp_path)
    fixtures = {"n_trials": 3, "max_rounds": 20}
    result = dg.materialize(
        [g_c4_invariance, g_c4b_seam, lever3_release_gate],
        resources=resources,
        instance=instance,
        run_config={
            "ops": {
                "g_c4_invariance": {"config": fixtures},
                "g_c4b_seam": {"config": fixtures},
                "lever3_release_gate": {
                    "config": {**fixtures, "probe_rounds": 20, "max_permutations": 19}
                },
            }
        },
        tags=APPROVED,
    )
    assert _metadata(result, "lever3_release_gate")["decision"] == "PASS"
    assert all(check.passed for check in result.get_asset_check_evaluations())
    with PostgresCatalog(postgres_dsn) as catalog:
        modes = sorted(entry.mode for entry in catalog.entries())
    # Two fixture folds, captured once in each mode: the seam and release parity gates reused
    # the full replays that trial invariance captured.
    assert modes == ["dataset_only", "dataset_only", "full_replay", "full_replay"]
    traces = [
        key
        for key in resources["artifacts"].blob_store().list_keys("captures")
        if key.endswith("replay_trace.json")
    ]
    assert len(traces) == 2


def test_unreachable_s3_is_a_clear_error_and_leaves_the_catalog_unchanged(
    s3_bucket, postgres_dsn, instance, tmp_path
):
    resources = production_resources("http://127.0.0.1:1", s3_bucket, postgres_dsn, tmp_path)
    result = dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=KEY,
        tags=APPROVED,
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("captured_fold").error.cause.message
    assert "127.0.0.1:1" in message and "Fix:" in message
    with PostgresCatalog(postgres_dsn) as catalog:
        assert catalog.entries() == []


def test_unreachable_postgres_is_a_clear_error(s3_endpoint, s3_bucket, instance, tmp_path):
    dsn = "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=2"
    resources = production_resources(s3_endpoint, s3_bucket, dsn, tmp_path)
    result = dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=KEY,
        tags=APPROVED,
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("captured_fold").error.cause.message
    assert "127.0.0.1" in message and "Fix:" in message
    assert "Contents" not in s3_client(s3_endpoint).list_objects_v2(Bucket=s3_bucket)
