"""The S3 backend of :class:`~diag_assets.core.storage.blob.BlobStore` (boto3, no Dagster).

Objects live at ``s3://<bucket>/<prefix>/<key>``. Keys pass :func:`check_key` like every other
store. Writes are atomic because S3 objects are: a reader sees the previous object or the whole
new one. Large payloads go up as a multipart upload, which only becomes an object when it is
completed; an upload abandoned by a crashed process is invisible and is removed by the lifecycle
rule :func:`ensure_bucket_lifecycle` installs.

A missing object is ``FileNotFoundError`` (the same contract as the local store). Everything
that means "the store cannot be used right now" (unreachable endpoint, timeouts, missing
credentials, access denied, missing bucket, any other S3 error) is :class:`StoreUnavailable`,
whose message names the endpoint and bucket and says what to fix.
"""

import io
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import xxhash
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from diag_assets.core.storage.blob import BlobStore, StoreError, check_key

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 16 * MiB
S3_MIN_PART_SIZE = 5 * MiB
LIFECYCLE_RULE_ID = "diag-abort-incomplete-multipart"

# ConnectionError covers EndpointConnectionError, ConnectTimeoutError, SSLError and proxy
# errors; HTTPClientError covers ReadTimeoutError, ConnectionClosedError and broken streams.
_UNAVAILABLE_ERRORS = (
    BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    IncompleteReadError,
    ChecksumError,
)
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
_ACCESS_CODES = frozenset(
    {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)

T = TypeVar("T")


class StoreUnavailable(StoreError):
    """The S3 store cannot be reached or used; the message names the problem and the fix.

    A :class:`~diag_assets.core.storage.blob.StoreError`, like every other store failure.
    """


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_missing_key(error: ClientError) -> bool:
    return _error_code(error) in _MISSING_KEY_CODES


def _endpoint_of(client: Any) -> str:
    return str(getattr(client.meta, "endpoint_url", None) or "the default AWS endpoint")


def _unavailable(
    client: Any, bucket: str, what: str, error: Exception, *, missing_bucket: bool = False
) -> NoReturn:
    """Raise :class:`StoreUnavailable` for ``error``, with a fix that matches its cause."""
    endpoint = _endpoint_of(client)
    where = f"S3 bucket {bucket!r} at {endpoint}"
    if isinstance(error, ClientError):
        code = _error_code(error)
        detail = f"{code or 'error'}: {error}"
        if missing_bucket or code in _MISSING_BUCKET_CODES:
            fix = (
                f"create bucket {bucket!r} on {endpoint}, or configure the artifact store with "
                "an existing bucket."
            )
        elif code in _ACCESS_CODES:
            fix = (
                "check the access key and secret (set them with dg.EnvVar on the S3 resource) "
                f"and that they may get, put, list and delete objects in {bucket!r}."
            )
        else:
            fix = f"check the S3 service at {endpoint} and the bucket {bucket!r}, then retry."
    elif isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        detail = f"{type(error).__name__}: {error}"
        fix = (
            "give the S3 resource credentials: aws_access_key_id and aws_secret_access_key via "
            "dg.EnvVar, a profile_name, or the standard AWS_* environment variables."
        )
    else:
        detail = f"{type(error).__name__}: {error}"
        fix = (
            f"check that {endpoint} is the right endpoint_url on the S3 resource and that the "
            "service is reachable from this host (network, proxy, TLS), then retry."
        )
    raise StoreUnavailable(f"Could not {what} on {where} ({detail}).", fix) from error


class S3BlobStore(BlobStore):
    """Objects in an S3 bucket under an optional prefix.

    Args:
        client: A boto3 S3 client. Its timeouts and retries are the caller's choice; keep the
            connect timeout short so an unreachable endpoint fails fast.
        bucket: The bucket name.
        prefix: Folder-like prefix of every key (no leading or trailing slash), or ``""``.
        multipart_threshold: Payloads larger than this many bytes go up as a multipart upload.
        multipart_chunksize: Part size of multipart uploads; at least 5 MiB (the S3 minimum).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3BlobStore needs a bucket name.")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        if multipart_chunksize < S3_MIN_PART_SIZE:
            raise ValueError(
                f"multipart_chunksize must be at least {S3_MIN_PART_SIZE} bytes (the S3 minimum "
                f"part size), got {multipart_chunksize}."
            )
        if multipart_threshold < 1:
            raise ValueError(f"multipart_threshold must be positive, got {multipart_threshold}.")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.multipart_threshold = multipart_threshold
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )
        self._bucket_checked = False

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(
        self,
        what: str,
        operation: Callable[[], T],
        *,
        if_missing: Callable[[ClientError], T] | None = None,
    ) -> T:
        """Run one S3 operation; a missing key goes to ``if_missing``, failures are unavailable."""
        try:
            return operation()
        except ClientError as error:
            if if_missing is not None and _is_missing_key(error):
                return if_missing(error)
            _unavailable(self.client, self.bucket, what, error)
        except _UNAVAILABLE_ERRORS as error:
            _unavailable(self.client, self.bucket, what, error)

    def _check_bucket(self, what: str) -> None:
        # HEAD answers a bare 404 for a missing key and a missing bucket alike; one HEAD of the
        # bucket per store tells them apart, so a misconfigured bucket is never "no object".
        if self._bucket_checked:
            return

        def no_bucket(error: ClientError) -> NoReturn:
            _unavailable(self.client, self.bucket, what, error, missing_bucket=True)

        self._call(what, lambda: self.client.head_bucket(Bucket=self.bucket), if_missing=no_bucket)
        self._bucket_checked = True

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``; readers see the old object or the whole new one.

        Payloads above ``multipart_threshold`` use a multipart upload, which S3 only turns
        into an object once every part is in.

        Raises:
            StoreUnavailable: The store could not be reached or refused the write.
        """
        object_key = self._object_key(key)
        if len(data) > self.multipart_threshold:
            self._call(
                f"upload {object_key!r}",
                lambda: self.client.upload_fileobj(
                    io.BytesIO(data), self.bucket, object_key, Config=self.transfer_config
                ),
            )
        else:
            self._call(
                f"write {object_key!r}",
                lambda: self.client.put_object(Bucket=self.bucket, Key=object_key, Body=data),
            )

    def read_bytes(self, key: str) -> bytes:
        """Read the whole object at ``key``.

        Raises:
            FileNotFoundError: No object is stored at ``key``.
            StoreUnavailable: The store could not be reached, or the bucket is missing.
        """
        object_key = self._object_key(key)

        def get() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            # The body streams after the headers: a timeout here must be handled too.
            return response["Body"].read()

        def missing(error: ClientError) -> NoReturn:
            raise FileNotFoundError(f"No object at {self.uri(key)}.") from error

        return self._call(f"read {object_key!r}", get, if_missing=missing)

    def digest(self, key: str) -> tuple[int, str]:
        """Size and xxh3-128 digest of the object, hashed as its body streams in.

        Raises:
            FileNotFoundError: No object is stored at ``key``.
            StoreUnavailable: The store could not be reached, or the bucket is missing.
        """
        object_key = self._object_key(key)

        def stream() -> tuple[int, str]:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            hasher = xxhash.xxh3_128()
            size = 0
            for chunk in response["Body"].iter_chunks(chunk_size=1 << 20):
                hasher.update(chunk)
                size += len(chunk)
            return size, hasher.hexdigest()

        def missing(error: ClientError) -> NoReturn:
            raise FileNotFoundError(f"No object at {self.uri(key)}.") from error

        return self._call(f"hash {object_key!r}", stream, if_missing=missing)

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``.

        Raises:
            StoreUnavailable: The store could not be reached, or the bucket is missing.
        """
        object_key = self._object_key(key)

        def head() -> bool:
            self.client.head_object(Bucket=self.bucket, Key=object_key)
            return True

        what = f"look up {object_key!r}"

        def missing(_: ClientError) -> bool:
            self._check_bucket(what)
            return False

        return self._call(what, head, if_missing=missing)

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, relative to the store's prefix, sorted.

        Objects whose names are not valid store keys (console folder markers, foreign
        uploads) are left out: this store could not read them back anyway.

        Raises:
            StoreUnavailable: The store could not be reached, or the bucket is missing.
        """
        listed_prefix = self._object_key(prefix) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0

        def list_all() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            names: list[str] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=listed_prefix):
                names.extend(item["Key"] for item in page.get("Contents", []))
            return names

        keys = []
        for name in self._call(f"list {listed_prefix!r}", list_all):
            relative = name[strip:]
            try:
                keys.append(check_key(relative))
            except ValueError:
                continue
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete the object at ``key``; a missing object is fine.

        Raises:
            StoreUnavailable: The store could not be reached, or the bucket is missing.
        """
        object_key = self._object_key(key)
        self._call(
            f"delete {object_key!r}",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=object_key),
        )

    def uri(self, key: str) -> str:
        """``s3://bucket/prefix/key`` of the object."""
        return f"s3://{self.bucket}/{self._object_key(key)}"


def ensure_bucket_lifecycle(
    client: Any, bucket: str, *, abort_multipart_after_days: int = 1
) -> dict[str, Any]:
    """Make the bucket abort incomplete multipart uploads after ``abort_multipart_after_days``.

    The rule (ID ``diag-abort-incomplete-multipart``, whole bucket) is merged into the bucket's
    lifecycle configuration: rules with other IDs are kept as they are. Nothing is written when
    the rule is already in place, so this is safe to call on every deploy.

    Args:
        client: A boto3 S3 client allowed to get and put the bucket's lifecycle configuration.
        bucket: The bucket name.
        abort_multipart_after_days: Days after initiation at which an upload is aborted.

    Returns:
        The rule as installed.

    Raises:
        ValueError: ``abort_multipart_after_days`` is below 1.
        StoreUnavailable: The bucket could not be reached or its configuration not changed.
    """
    if abort_multipart_after_days < 1:
        raise ValueError(
            f"abort_multipart_after_days must be at least 1, got {abort_multipart_after_days}."
        )
    rule: dict[str, Any] = {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_multipart_after_days},
    }
    try:
        current = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as error:
        if _error_code(error) != "NoSuchLifecycleConfiguration":
            _unavailable(client, bucket, "read the lifecycle configuration", error)
        current = {}
    except _UNAVAILABLE_ERRORS as error:
        _unavailable(client, bucket, "read the lifecycle configuration", error)

    rules: list[dict[str, Any]] = list(current.get("Rules", []))
    ours = [existing for existing in rules if existing.get("ID") == LIFECYCLE_RULE_ID]
    if ours == [rule]:
        return rule
    merged = [existing for existing in rules if existing.get("ID") != LIFECYCLE_RULE_ID]
    merged.append(rule)
    request: dict[str, Any] = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": merged}}
    # A bucket-level setting returned beside the rules; putting the rules without it would
    # reset it to the default.
    if "TransitionDefaultMinimumObjectSize" in current:
        request["TransitionDefaultMinimumObjectSize"] = current[
            "TransitionDefaultMinimumObjectSize"
        ]
    try:
        client.put_bucket_lifecycle_configuration(**request)
    except (ClientError, *_UNAVAILABLE_ERRORS) as error:
        _unavailable(client, bucket, "put the lifecycle configuration", error)
    return rule
