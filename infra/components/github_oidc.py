"""GithubDeployAccess: GitHub's OIDC provider and the role CI assumes to roll out a release.

The role trusts tokens of one repository only, for branch ``main`` and the configured GitHub
environments, with the STS audience; it can push the image, upload the bundle and roll the
endpoint (or describe the cluster), not create or delete infrastructure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:github_oidc:GithubDeployAccess"
GITHUB_OIDC_URL = f"https://{policies.GITHUB_OIDC_HOST}"


@dataclass(frozen=True)
class GithubDeployAccessArgs:
    """Inputs of :class:`GithubDeployAccess`.

    Attributes:
        role_name: IAM name of the deploy role.
        repository: GitHub ``owner/name`` allowed to deploy.
        environments: GitHub environments allowed to deploy (besides branch ``main``).
        existing_provider_arn: The account's GitHub OIDC provider, or "" to create it.
        account_id: AWS account id.
        region: AWS region.
        name_prefix: Prefix of the SageMaker resources and alarms the role may touch.
        bucket_arn: Artifact bucket (bundles are uploaded under ``models/``).
        repository_arn: ECR repository the role pushes to.
        key_arn: KMS key of the bucket.
        execution_role_arn: SageMaker execution role it may pass (SageMaker target only).
        cluster_arn: EKS cluster it may describe (EKS target only).
        training_role_arn: Role of SageMaker training jobs it may start and pass.
        tracking_server_arn: Managed MLflow server it registers, deploys and promotes with.
        tracking_server_in_bucket: That server stores its artifacts in this stack's bucket.
        tags: Tags on every taggable child.
    """

    role_name: str
    repository: str
    environments: tuple[str, ...]
    existing_provider_arn: str
    account_id: pulumi.Input[str]
    region: str
    name_prefix: str
    bucket_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str] | None = None
    cluster_arn: pulumi.Input[str] | None = None
    training_role_arn: pulumi.Input[str] | None = None
    tracking_server_arn: pulumi.Input[str] | None = None
    tracking_server_in_bucket: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class GithubDeployAccess(pulumi.ComponentResource):
    """The OIDC provider (unless the account has one) and the least-privilege deploy role."""

    provider_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: GithubDeployAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_provider_arn:
            self.provider_arn = pulumi.Output.from_input(args.existing_provider_arn)
        else:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-provider",
                url=GITHUB_OIDC_URL,
                client_id_lists=[policies.STS_AUDIENCE],
                tags=args.tags,
                opts=child,
            )
            self.provider_arn = provider.arn
        self.role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            description=f"GitHub Actions of {args.repository} roll out mlship releases",
            assume_role_policy=self.provider_arn.apply(
                lambda arn: policies.dumps(
                    policies.github_deploy_assume_role(
                        provider_arn=arn,
                        repository=args.repository,
                        environments=args.environments,
                    )
                )
            ),
            max_session_duration=3600,
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(
                args.bucket_arn,
                args.repository_arn,
                args.key_arn,
                args.account_id,
                args.execution_role_arn if args.execution_role_arn is not None else "",
                args.cluster_arn if args.cluster_arn is not None else "",
                args.training_role_arn if args.training_role_arn is not None else "",
                args.tracking_server_arn if args.tracking_server_arn is not None else "",
            ).apply(
                lambda v: policies.dumps(
                    policies.deploy_policy(
                        bucket_arn=v[0],
                        repository_arn=v[1],
                        key_arn=v[2],
                        account_id=v[3],
                        region=args.region,
                        name_prefix=args.name_prefix,
                        execution_role_arn=v[4] or None,
                        cluster_arn=v[5] or None,
                        training_role_arn=v[6] or None,
                        tracking_server_arn=v[7] or None,
                        tracking_server_in_bucket=args.tracking_server_in_bucket,
                    )
                )
            ),
            opts=child,
        )
        self.role_arn = self.role.arn
        self.register_outputs({"provider_arn": self.provider_arn, "role_arn": self.role_arn})
