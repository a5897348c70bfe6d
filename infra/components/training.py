"""TrainingRole: the IAM role SageMaker training jobs run with (least privilege).

A training job reads the data area of the artifact bucket (``data/``), writes bundles (and the
checkpoints of spot jobs) to its staging area (``staging/``), pulls the training image and
writes its logs: :func:`infra.policies.training_job_policy`, nothing else. The deploy role may
pass it to SageMaker only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:training:TrainingRole"


@dataclass(frozen=True)
class TrainingRoleArgs:
    """Inputs of :class:`TrainingRole`.

    Attributes:
        role_name: IAM name of the role.
        account_id: AWS account id (trust condition, log ARNs).
        region: AWS region (log ARNs).
        bucket_arn: Artifact bucket (``data/`` read, ``staging/`` written).
        repository_arn: ECR repository of the training image.
        key_arn: KMS key of the bucket.
        tags: Tags on the role.
    """

    role_name: str
    account_id: pulumi.Input[str]
    region: str
    bucket_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


class TrainingRole(pulumi.ComponentResource):
    """The role of SageMaker training jobs, trusted by SageMaker for this account only."""

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: TrainingRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            description="SageMaker training jobs of mlship: read data/, write staging/",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.dumps(
                    policies.service_assume_role("sagemaker.amazonaws.com", account)
                )
            ),
            max_session_duration=3600,
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.bucket_arn, args.repository_arn, args.key_arn, args.account_id
            ).apply(
                lambda v: policies.dumps(
                    policies.training_job_policy(
                        bucket_arn=v[0],
                        repository_arn=v[1],
                        key_arn=v[2],
                        region=args.region,
                        account_id=v[3],
                    )
                )
            ),
            opts=child,
        )
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})
