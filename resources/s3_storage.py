"""The production profile's artifact store: captures and results in S3."""

from typing import Any

from boto3.session import Session
from botocore.config import Config
from botocore.handlers import disable_signing
from dagster_aws.s3 import S3Resource
from pydantic import Field

from diag_assets.core.storage.blob import BlobStore
from diag_assets.core.storage.s3 import S3BlobStore, ensure_bucket_lifecycle
from resources.storage import ArtifactStoreResource


class S3ArtifactStore(ArtifactStoreResource):
    """Captures and results in S3 (the production profile).

    The nested ``s3`` resource (dagster-aws) supplies endpoint_url, region_name, credentials
    (pass secrets as ``dg.EnvVar``) and ``max_attempts``, the total number of tries of each
    request (first call included) in botocore's ``standard`` retry mode; 3 is a good value
    for production. This resource adds the connect and read
    timeouts, which ``S3Resource`` cannot set: botocore's defaults (60 s each, times
    ``max_attempts``) would hide an unreachable endpoint for minutes.
    """

    s3: S3Resource = Field(description="S3 connection: endpoint, region, credentials, retries.")
    bucket: str = Field(description="Bucket that holds captures/ and results/.")
    prefix: str = Field(
        default="diag-harness", description="Key prefix of every object, without slashes."
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a TCP/TLS connection per attempt."
    )
    read_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds to wait for response bytes per attempt."
    )

    def s3_client(self) -> Any:
        """A boto3 S3 client configured by ``s3``, with this resource's timeouts.

        Mirrors ``dagster_aws.s3.utils.construct_s3_client`` (every ``S3Resource`` field is
        honoured) because a client's timeouts can only be set when it is built.
        """
        session = Session(profile_name=self.s3.profile_name)
        config = Config(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            # S3Resource documents max_attempts as including the first call, which is botocore's
            # total_max_attempts; botocore's own "max_attempts" key would add one more try.
            retries={"total_max_attempts": max(1, self.s3.max_attempts), "mode": "standard"},
        )
        client = session.client(
            "s3",
            region_name=self.s3.region_name,
            use_ssl=self.s3.use_ssl,
            verify=self.s3.verify,
            endpoint_url=self.s3.endpoint_url,
            aws_access_key_id=self.s3.aws_access_key_id,
            aws_secret_access_key=self.s3.aws_secret_access_key,
            aws_session_token=self.s3.aws_session_token,
            config=config,
        )
        if self.s3.use_unsigned_session:
            client.meta.events.register("choose-signer.s3.*", disable_signing)
        return client

    def blob_store(self) -> BlobStore:
        """An S3 blob store at ``s3://bucket/prefix/``."""
        return S3BlobStore(self.s3_client(), self.bucket, self.prefix)

    def ensure_lifecycle(self, abort_multipart_after_days: int = 1) -> dict[str, Any]:
        """Install the bucket rule that aborts abandoned multipart uploads; returns the rule.

        Needs permission to get and put the bucket's lifecycle configuration, which a run's
        role usually lacks: call it from a deploy step, not from assets.
        """
        return ensure_bucket_lifecycle(
            self.s3_client(), self.bucket, abort_multipart_after_days=abort_multipart_after_days
        )
