"""The S3 blob store and the S3 artifact resource, against a real moto server."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import dagster as dg
import pytest
from boto3.session import Session
from botocore.config import Config
from dagster_aws.s3 import S3Resource
from pydantic import BaseModel

from diag_assets.core.capture.artifacts import CaptureArtifacts, CaptureVerificationError
from diag_assets.core.capture.manifest import (
    MANIFEST_FILE,
    TRACE_FILE,
    TRIAL_LOG_FILE,
    X_FILE,
    Y_FILE,
)
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.s3 import (
    LIFECYCLE_RULE_ID,
    MiB,
    S3BlobStore,
    StoreUnavailable,
    ensure_bucket_lifecycle,
)
from resources.s3_storage import S3ArtifactStore
from tests.conftest import TINY_CAPTURE, TINY_FOLDS
from tests.services import s3_client

pytestmark = pytest.mark.s3

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
RECIPE = ReferenceRecipe()
UNREACHABLE = "http://127.0.0.1:1"


class Note(BaseModel):
    verdict: str
    score: float


@pytest.fixture(scope="module")
def captured(tiny_source):
    return replay_cell(prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE), RECIPE)


@pytest.fixture
def client(s3_endpoint):
    return s3_client(s3_endpoint)


@pytest.fixture
def store(client, s3_bucket) -> S3BlobStore:
    return S3BlobStore(client, s3_bucket, "team/diag")


def unreachable_client():
    return boto3.client(
        "s3",
        endpoint_url=UNREACHABLE,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}),
    )


def raw_keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_round_trip_under_a_prefix(store, client, s3_bucket):
    store.write_bytes("captures/ck-1/X.parquet", b"x-bytes")
    store.write_bytes("captures/ck-1/manifest.json", b"{}")
    store.write_bytes("captures/ck-2/y.parquet", b"y")
    store.write_bytes("results/s40_verdict/cell.json", b"r")

    assert raw_keys(client, s3_bucket) == [
        "team/diag/captures/ck-1/X.parquet",
        "team/diag/captures/ck-1/manifest.json",
        "team/diag/captures/ck-2/y.parquet",
        "team/diag/results/s40_verdict/cell.json",
    ]
    assert store.read_bytes("captures/ck-1/X.parquet") == b"x-bytes"
    assert store.exists("captures/ck-1/X.parquet")
    assert not store.exists("captures/ck-1/y.parquet")
    assert store.list_keys("captures") == [
        "captures/ck-1/X.parquet",
        "captures/ck-1/manifest.json",
        "captures/ck-2/y.parquet",
    ]
    assert store.list_keys("captures/ck-1") == [
        "captures/ck-1/X.parquet",
        "captures/ck-1/manifest.json",
    ]
    # "captures/ck" is a folder-like prefix, not a string prefix of "captures/ck-1".
    assert store.list_keys("captures/ck") == []
    assert store.list_keys("nothing") == []
    assert (
        store.uri("captures/ck-1/X.parquet")
        == f"s3://{s3_bucket}/team/diag/captures/ck-1/X.parquet"
    )

    store.write_bytes("captures/ck-1/X.parquet", b"replaced")
    assert store.read_bytes("captures/ck-1/X.parquet") == b"replaced"

    store.delete("captures/ck-1/X.parquet")
    store.delete("captures/ck-1/X.parquet")  # a missing object is fine
    assert not store.exists("captures/ck-1/X.parquet")
    with pytest.raises(FileNotFoundError, match="team/diag/captures/ck-1/X.parquet"):
        store.read_bytes("captures/ck-1/X.parquet")
    assert store.list_keys("captures/ck-1") == ["captures/ck-1/manifest.json"]


def test_store_without_prefix_and_foreign_objects(client, s3_bucket):
    store = S3BlobStore(client, s3_bucket)
    store.write_bytes("results/a.json", b"a")
    client.put_object(Bucket=s3_bucket, Key="results/folder-marker/", Body=b"")
    client.put_object(Bucket=s3_bucket, Key="results/with space.json", Body=b"")
    assert store.uri("results/a.json") == f"s3://{s3_bucket}/results/a.json"
    assert store.list_keys("results") == ["results/a.json"]
    assert raw_keys(client, s3_bucket)[0] == "results/a.json"


def test_listing_is_paginated(client, s3_bucket):
    store = S3BlobStore(client, s3_bucket, "p")
    keys = [f"many/k{i:04d}" for i in range(1_005)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=s3_bucket, Key=f"p/{key}"), keys))
    assert store.list_keys("many") == keys


def test_missing_key_is_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.read_bytes("captures/ck-none/manifest.json")
    assert not store.exists("captures/ck-none/manifest.json")
    assert CaptureArtifacts(store).read_manifest("ck-none") is None


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a/./b", "a b", ""])
def test_unsafe_keys_are_refused(store, client, s3_bucket, key):
    for call in (
        lambda: store.write_bytes(key, b"data"),
        lambda: store.read_bytes(key),
        lambda: store.exists(key),
        lambda: store.list_keys(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
    ):
        with pytest.raises(ValueError, match="unsafe"):
            call()
    assert raw_keys(client, s3_bucket) == []


def test_unsafe_prefix_and_bad_part_size_are_refused(client, s3_bucket):
    with pytest.raises(ValueError, match="unsafe"):
        S3BlobStore(client, s3_bucket, "a/../b")
    with pytest.raises(ValueError, match="5242880"):
        S3BlobStore(client, s3_bucket, multipart_chunksize=MiB)


def test_large_payload_goes_up_in_parts_and_round_trips(client, s3_bucket):
    store = S3BlobStore(
        client, s3_bucket, "big", multipart_threshold=5 * MiB + 1, multipart_chunksize=5 * MiB
    )
    payload = os.urandom(12 * MiB + 123)
    store.write_bytes("captures/ck-big/X.parquet", payload)
    assert store.read_bytes("captures/ck-big/X.parquet") == payload
    # A multipart object's ETag ends in "-<parts>": 12 MiB + 123 bytes in 5 MiB parts is 3.
    head = client.head_object(Bucket=s3_bucket, Key="big/captures/ck-big/X.parquet")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(payload)

    store.write_bytes("captures/ck-big/small.json", b"{}")
    head = client.head_object(Bucket=s3_bucket, Key="big/captures/ck-big/small.json")
    assert "-" not in head["ETag"]
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_capture_round_trips_and_tampering_is_detected(store, client, s3_bucket, captured):
    artifacts = CaptureArtifacts(store)
    manifest = artifacts.write(captured)
    key = manifest.capture_key
    assert store.list_keys(f"captures/{key}") == sorted(
        [f"captures/{key}/{MANIFEST_FILE}"]
        + [
            f"captures/{key}/{manifest.attempt}/{name}"
            for name in (X_FILE, Y_FILE, TRIAL_LOG_FILE, TRACE_FILE)
        ]
    )
    assert artifacts.uri(key) == f"s3://{s3_bucket}/team/diag/captures/{key}/{MANIFEST_FILE}"
    assert artifacts.read_manifest(key) == manifest
    loaded = artifacts.load(manifest)
    assert loaded.manifest.content_hash == captured.manifest.content_hash
    assert loaded.data.X.equals(captured.data.X) and loaded.data.y.equals(captured.data.y)
    assert loaded.trial_log == captured.trial_log

    object_key = f"team/diag/{artifacts.file_key(manifest, X_FILE)}"
    raw = bytearray(client.get_object(Bucket=s3_bucket, Key=object_key)["Body"].read())
    raw[len(raw) // 2] ^= 0xFF
    client.put_object(Bucket=s3_bucket, Key=object_key, Body=bytes(raw))
    with pytest.raises(CaptureVerificationError, match="X.parquet does not match"):
        artifacts.load(manifest)


def test_lifecycle_rule_is_merged_and_idempotent(client, s3_bucket):
    other = {
        "ID": "expire-scratch",
        "Status": "Enabled",
        "Filter": {"Prefix": "scratch/"},
        "Expiration": {"Days": 7},
    }
    client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [other]}
    )

    def rules() -> dict[str, dict]:
        config = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)
        return {rule["ID"]: rule for rule in config["Rules"]}

    rule = ensure_bucket_lifecycle(client, s3_bucket)
    assert rule["ID"] == LIFECYCLE_RULE_ID
    first = rules()
    assert set(first) == {"expire-scratch", LIFECYCLE_RULE_ID}
    assert first[LIFECYCLE_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert first[LIFECYCLE_RULE_ID]["Status"] == "Enabled"
    assert first["expire-scratch"]["Expiration"] == {"Days": 7}

    assert ensure_bucket_lifecycle(client, s3_bucket) == rule
    assert rules() == first

    ensure_bucket_lifecycle(client, s3_bucket, abort_multipart_after_days=3)
    third = rules()
    assert set(third) == {"expire-scratch", LIFECYCLE_RULE_ID}
    assert third[LIFECYCLE_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    assert third["expire-scratch"] == first["expire-scratch"]

    with pytest.raises(ValueError, match="at least 1"):
        ensure_bucket_lifecycle(client, s3_bucket, abort_multipart_after_days=0)


def test_lifecycle_on_a_bucket_without_rules(client, s3_bucket):
    ensure_bucket_lifecycle(client, s3_bucket)
    config = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)
    assert [rule["ID"] for rule in config["Rules"]] == [LIFECYCLE_RULE_ID]


@pytest.mark.parametrize("operation", ["write", "read", "exists", "list", "delete", "lifecycle"])
def test_unreachable_endpoint_fails_fast_and_says_so(operation):
    client = unreachable_client()
    store = S3BlobStore(client, "diag-bucket", "p")
    calls = {
        "write": lambda: store.write_bytes("a/b.json", b"{}"),
        "read": lambda: store.read_bytes("a/b.json"),
        "exists": lambda: store.exists("a/b.json"),
        "list": lambda: store.list_keys("a"),
        "delete": lambda: store.delete("a/b.json"),
        "lifecycle": lambda: ensure_bucket_lifecycle(client, "diag-bucket"),
    }
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        calls[operation]()
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert UNREACHABLE in message and "'diag-bucket'" in message
    assert "Fix:" in message and "endpoint_url" in message
    assert not isinstance(raised.value, FileNotFoundError)


def test_missing_bucket_is_unavailable_not_missing_key(client):
    store = S3BlobStore(client, "diag-no-such-bucket", "p")
    for call in (
        lambda: store.read_bytes("a/b.json"),
        lambda: store.exists("a/b.json"),
        lambda: store.list_keys("a"),
        lambda: store.write_bytes("a/b.json", b"{}"),
    ):
        with pytest.raises(StoreUnavailable, match="create bucket 'diag-no-such-bucket'"):
            call()


def test_missing_credentials_are_unavailable(s3_endpoint, s3_bucket, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with pytest.raises(StoreUnavailable, match="give the S3 resource credentials"):
        S3BlobStore(client, s3_bucket).read_bytes("a.json")


def s3_resource(endpoint: str, **overrides) -> S3Resource:
    settings = {
        "endpoint_url": endpoint,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "region_name": "us-east-1",
        **overrides,
    }
    return S3Resource(**settings)


def test_resource_builds_a_working_store(s3_endpoint, s3_bucket, captured):
    writer = S3ArtifactStore(s3=s3_resource(s3_endpoint), bucket=s3_bucket)
    manifest = writer.captures().write(captured)
    uri = writer.results().write("s40_verdict", CELL, Note(verdict="SIGNAL", score=0.25))
    assert uri == f"s3://{s3_bucket}/diag-harness/results/s40_verdict/{CELL.slug}.json"

    reader = S3ArtifactStore(s3=s3_resource(s3_endpoint), bucket=s3_bucket)
    assert reader.captures().read_manifest(manifest.capture_key) == manifest
    assert reader.captures().load(manifest).trial_log == captured.trial_log
    assert reader.results().read("s40_verdict", CELL, Note) == Note(verdict="SIGNAL", score=0.25)
    assert reader.results().read("s22a1_anchor", CELL, Note) is None
    assert raw_keys(s3_client(s3_endpoint), s3_bucket)[0].startswith("diag-harness/captures/")


def test_resource_timeouts_and_retries_reach_the_client(s3_endpoint):
    resource = S3ArtifactStore(
        s3=s3_resource(s3_endpoint, max_attempts=2), bucket="b", connect_timeout_s=2.5
    )
    config = resource.s3_client().meta.config
    assert config.connect_timeout == 2.5
    assert config.read_timeout == 60
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}


def test_resource_on_an_unreachable_endpoint_fails_fast():
    resource = S3ArtifactStore(s3=s3_resource(UNREACHABLE, max_attempts=1), bucket="diag-bucket")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="127.0.0.1:1"):
        resource.captures().read_manifest("ck-any")
    assert time.monotonic() - started < 5


def test_resource_runs_in_dagster_with_env_var_secrets(s3_endpoint, s3_bucket, monkeypatch):
    monkeypatch.setenv("DIAG_TEST_S3_KEY", "test")
    monkeypatch.setenv("DIAG_TEST_S3_SECRET", "test")

    @dg.asset
    def stored_note(artifacts: S3ArtifactStore) -> str:
        return artifacts.results().write("note", CELL, Note(verdict="NO_SIGNAL", score=0.5))

    artifacts = S3ArtifactStore(
        s3=S3Resource(
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=dg.EnvVar("DIAG_TEST_S3_KEY"),
            aws_secret_access_key=dg.EnvVar("DIAG_TEST_S3_SECRET"),
            max_attempts=3,
        ),
        bucket=s3_bucket,
        prefix="prod",
    )
    result = dg.materialize([stored_note], resources={"artifacts": artifacts})
    assert result.success
    assert result.output_for_node("stored_note") == (
        f"s3://{s3_bucket}/prod/results/note/{CELL.slug}.json"
    )
    store = S3BlobStore(s3_client(s3_endpoint), s3_bucket, "prod")
    assert Note.model_validate_json(store.read_bytes(f"results/note/{CELL.slug}.json")).score == 0.5


def test_streaming_digest_matches_the_bytes_digest(s3_endpoint, s3_bucket):
    from diag_assets.core.hashing.digests import bytes_digest
    from diag_assets.core.storage.s3 import S3BlobStore
    from tests.services import s3_client

    store = S3BlobStore(s3_client(s3_endpoint), s3_bucket, "p")
    payload = bytes(range(256)) * 20_000  # several chunks
    store.write_bytes("a/b.bin", payload)
    assert store.digest("a/b.bin") == (len(payload), bytes_digest(payload))
    with pytest.raises(FileNotFoundError):
        store.digest("a/missing.bin")
