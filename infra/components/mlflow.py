"""MlflowServer: an optional SageMaker managed MLflow tracking server on the artifact bucket."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:mlflow:MlflowServer"


@dataclass(frozen=True)
class MlflowServerArgs:
    """Inputs of :class:`MlflowServer`.

    Attributes:
        server_name: Tracking server name.
        role_name: IAM name of the server's role.
        bucket_name: Artifact bucket (artifacts go under ``mlflow/``).
        bucket_arn: Its ARN.
        key_arn: The bucket's KMS key.
        size: Small, Medium or Large.
        tags: Tags on every taggable child.
    """

    server_name: str
    role_name: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    size: str
    tags: dict[str, str] = field(default_factory=dict)


class MlflowServer(pulumi.ComponentResource):
    """The tracking server and a role limited to ``s3://<bucket>/mlflow/``."""

    tracking_server_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: MlflowServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            # No aws:SourceAccount condition: SageMaker does not document it for role trust.
            assume_role_policy=policies.dumps(
                policies.service_assume_role("sagemaker.amazonaws.com")
            ),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                lambda v: policies.dumps(
                    policies.mlflow_server_policy(bucket_arn=v[0], key_arn=v[1])
                )
            ),
            opts=child,
        )
        server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-server",
            tracking_server_name=args.server_name,
            artifact_store_uri=pulumi.Output.concat("s3://", args.bucket_name, "/mlflow"),
            role_arn=role.arn,
            tracking_server_size=args.size,
            automatic_model_registration=False,
            tags=args.tags,
            opts=child,
        )
        self.tracking_server_arn = server.arn
        self.register_outputs({"tracking_server_arn": self.tracking_server_arn})
