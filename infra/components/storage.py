"""ArtifactStore: the KMS key and the S3 bucket for model bundles, data capture and DVC.

Prefixes: ``models/`` (bundles; the execution role reads only this), ``capture/`` (SageMaker
data capture; written only by the endpoint), ``dvc/`` (the DVC remote), ``data/`` (training data
read by SageMaker training jobs, one object per dataset, versioned by the bucket), ``staging/``
(bundles written by training jobs, before the registry decides what ships), ``mlflow/``
(artifacts of the optional managed MLflow server).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:storage:ArtifactStore"
# The bucket's areas (no trailing slash): policies, outputs and the workflows use these names.
MODELS_PREFIX = "models"
CAPTURE_PREFIX = "capture"
DVC_PREFIX = "dvc"
DATA_PREFIX = "data"
STAGING_PREFIX = "staging"
MLFLOW_PREFIX = "mlflow"
OLD_VERSIONS_DAYS = 90


@dataclass(frozen=True)
class ArtifactStoreArgs:
    """Inputs of :class:`ArtifactStore`.

    Attributes:
        bucket_name: Globally unique bucket name (see ``Naming.bucket``).
        account_id: The AWS account, for the key policy.
        tags: Tags on every taggable child.
        protect: Refuse to delete the key and bucket (production keeps its history).
    """

    bucket_name: pulumi.Input[str]
    account_id: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)
    protect: bool = False


class ArtifactStore(pulumi.ComponentResource):
    """A KMS key with rotation and an encrypted, versioned, private, TLS-only bucket."""

    key_arn: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    dvc_remote_uri: pulumi.Output[str]
    data_uri: pulumi.Output[str]
    staging_uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        # Stateful children: losing the key makes every bundle and capture unreadable; losing
        # the bucket loses the model history. `protect` makes `pulumi destroy` refuse.
        self._stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self._child = pulumi.ResourceOptions(parent=self)
        self.key = self._create_key(name, args)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            tags=args.tags,
            opts=self._stateful,
        )
        self._secure_bucket(name)
        self.key_arn = self.key.arn
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.dvc_remote_uri = pulumi.Output.concat("s3://", self.bucket_name, f"/{DVC_PREFIX}")
        self.data_uri = pulumi.Output.concat("s3://", self.bucket_name, f"/{DATA_PREFIX}")
        self.staging_uri = pulumi.Output.concat("s3://", self.bucket_name, f"/{STAGING_PREFIX}")
        self.register_outputs(
            {
                "key_arn": self.key_arn,
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "dvc_remote_uri": self.dvc_remote_uri,
                "data_uri": self.data_uri,
                "staging_uri": self.staging_uri,
            }
        )

    def _create_key(self, name: str, args: ArtifactStoreArgs) -> aws.kms.Key:
        key = aws.kms.Key(
            f"{name}-key",
            description="mlship artifacts: model bundles, data capture, DVC remote",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.dumps(policies.key_policy(account_id=account))
            ),
            tags=args.tags,
            opts=self._stateful,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=pulumi.Output.from_input(args.bucket_name).apply(lambda b: f"alias/{b}"),
            target_key_id=key.key_id,
            opts=self._child,
        )
        return key

    def _secure_bucket(self, name: str) -> None:
        bucket_id = self.bucket.id
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self._child,
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration={"status": "Enabled"},
            opts=self._child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    # S3 Bucket Keys cut KMS requests (and cost) by ~99% for SSE-KMS.
                    "bucket_key_enabled": True,
                }
            ],
            opts=self._child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_id,
            policy=self.bucket.arn.apply(
                lambda arn: policies.dumps(policies.tls_only_bucket_policy(bucket_arn=arn))
            ),
            # The public access block must exist first, or a policy could be public for a moment.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": OLD_VERSIONS_DAYS,
                        "newer_noncurrent_versions": 3,
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=self._child,
        )
