"""RolloutPolicy: the in-app routing policy of a model change, published where the service reads it.

The flags document compiled from the stack's ``rollout`` block (``infra/rollout_spec.py``) is
written to ``s3://<bucket>/models/rollout/flags.json``, KMS-encrypted with the artifact key;
the serving roles may already read ``models/*``, so no policy widens. The service re-reads it
every ``MLSHIP_FLAGS_REFRESH_SECONDS``: a ``pulumi up`` that changes a step, the shadow share or
the kill switch takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.rollout_spec import FLAGS_KEY

RESOURCE_TYPE = "mlship:rollout:RolloutPolicy"


@dataclass(frozen=True)
class RolloutPolicyArgs:
    """Inputs of :class:`RolloutPolicy`.

    Attributes:
        bucket_name: Artifact bucket.
        key_arn: Its KMS key.
        document: The flags document (JSON text, ``infra.rollout_spec.flags_json``).
        tags: Tags on the object.
    """

    bucket_name: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    document: str
    tags: dict[str, str] = field(default_factory=dict)


class RolloutPolicy(pulumi.ComponentResource):
    """The published flags document."""

    flags_uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: RolloutPolicyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        document = aws.s3.BucketObject(
            f"{name}-flags",
            bucket=args.bucket_name,
            key=FLAGS_KEY,
            content=args.document,
            content_type="application/json",
            server_side_encryption="aws:kms",
            kms_key_id=args.key_arn,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.flags_uri = pulumi.Output.concat("s3://", document.bucket, "/", document.key)
        self.register_outputs({"flags_uri": self.flags_uri})
