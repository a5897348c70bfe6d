"""Identity policies: what each role may do (execution role, deploy role, pods, MLflow, EKS).

Least privilege by construction: each statement names the actions it needs and the narrowest
resources they accept. The only ``*`` resources are for actions AWS does not scope to a resource
(``ecr:GetAuthorizationToken``, ``cloudwatch:PutMetricData``, the latter limited by a namespace
condition).
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.policies.actions import (
    ECR_PULL,
    ECR_PUSH,
    KEY_USE,
    MLFLOW_DEPLOY,
    MLFLOW_PROMOTE,
    MLFLOW_REGISTER,
)
from infra.policies.document import Document, Statement, allow, document
from infra.policies.training import mlflow_client_statements, training_launch_statements

# Namespace of the app's own CloudWatch metrics (if it publishes any besides Prometheus).
METRICS_NAMESPACE = "mlship"
# Where SageMaker publishes endpoint instance metrics (CPUUtilization, MemoryUtilization, ...):
# "Monitor Amazon SageMaker AI with Amazon CloudWatch", endpoint instance metrics.
SAGEMAKER_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
# What an execution role needs for a model in a VPC, exactly as the SageMaker guide lists it
# ("Give SageMaker AI Hosted Endpoints Access to Resources in Your Amazon VPC" and "CreateModel
# API: Execution Role Permissions"): SageMaker creates the endpoint's network interfaces in the
# subnets with this role. The guide grants them on "*" and warns (for processing jobs, the same
# mechanism) that resource filters or conditions make SageMaker's validation fail.
SAGEMAKER_VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


# AWS managed policies attached to the EKS roles (the documented minimum for each role).
EKS_CLUSTER_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
EKS_NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
)
EKS_EDIT_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"


def sagemaker_execution_policy(
    *,
    bucket_arn: str,
    repository_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    rollback_alarms: Sequence[str] = (),
    in_vpc: bool = False,
    model_prefix: str = "models/",
    capture_prefix: str = "capture/",
) -> Document:
    """What the SageMaker model needs: read the bundle, write captures, pull, log, use the key;
    read the endpoint's auto-rollback alarms (``rollback_alarms``, by name); for a model in a VPC
    (``in_vpc``), manage the endpoint's network interfaces."""
    log_group = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/*"
    statements: list[Statement] = [
        allow("ReadModel", ["s3:GetObject"], f"{bucket_arn}/{model_prefix}*"),
        allow("WriteCapture", ["s3:PutObject"], f"{bucket_arn}/{capture_prefix}*"),
        allow("PullImage", ECR_PULL, repository_arn),
        # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        allow(
            "WriteLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
            log_group,
        ),
        allow("PutLogEvents", ["logs:PutLogEvents"], f"{log_group}:log-stream:*"),
        {
            # The guide's execution-role policy grants PutMetricData; kept to the app's namespace
            # and the instance-metrics namespace, so the CPU and memory alarms get their data
            # whoever publishes it. The container cannot use it: it runs network-isolated.
            **allow("PutMetrics", ["cloudwatch:PutMetricData"], "*"),
            "Condition": {
                "StringEquals": {
                    "cloudwatch:namespace": [METRICS_NAMESPACE, SAGEMAKER_INSTANCE_NAMESPACE]
                }
            },
        },
        allow("UseKey", KEY_USE, key_arn),
    ]
    if rollback_alarms:
        # SageMaker evaluates auto-rollback alarms with the execution role ("Auto-Rollback
        # Configuration and Monitoring": the role needs cloudwatch:DescribeAlarms on them).
        alarm = f"arn:aws:cloudwatch:{region}:{account_id}:alarm"
        statements.append(
            allow(
                "ReadRollbackAlarms",
                ["cloudwatch:DescribeAlarms"],
                [f"{alarm}:{name}" for name in sorted(rollback_alarms)],
            )
        )
    if in_vpc:
        statements.append(allow("VpcNetworkInterfaces", SAGEMAKER_VPC_ACTIONS, "*"))
    return document(*statements)


def deploy_policy(
    *,
    bucket_arn: str,
    repository_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    name_prefix: str,
    execution_role_arn: str | None,
    cluster_arn: str | None,
    training_role_arn: str | None = None,
    tracking_server_arn: str | None = None,
    tracking_server_in_bucket: bool = False,
) -> Document:
    """What CI needs to roll out a new image and bundle, and nothing that creates infrastructure.

    Training (``training_role_arn`` set): start, follow and stop SageMaker training jobs named
    ``<prefix>-*`` with the training role (passed to SageMaker only), read the data area's
    objects (their version ids) and the bundles jobs leave in the staging area. Registry
    (``tracking_server_arn`` set): the MLflow actions of registering, deploying and promoting
    a version on that server, and its artifacts when it stores them in this stack's bucket
    (``tracking_server_in_bucket``).

    SageMaker target (``execution_role_arn`` set): push the image, upload the bundle, create the
    model and endpoint configuration and update the endpoint (all named ``<prefix>-*``), pass the
    execution role to SageMaker only, read the alarms, invoke the endpoint for smoke tests, list
    and delete retired models and configurations.
    EKS target (``cluster_arn`` set): push, upload, describe the cluster (Kubernetes RBAC comes
    from the cluster access entry, limited to the service's namespace).
    """
    statements = [
        allow("PushImage", ECR_PUSH, repository_arn),
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        allow("UploadBundle", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/models/*"),
        {
            **allow("ListBundles", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": ["models/*"]}},
        },
        allow("UseKey", ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"], key_arn),
    ]
    if execution_role_arn is not None:
        sm = f"arn:aws:sagemaker:{region}:{account_id}"
        statements += [
            allow(
                "RollOutEndpoint",
                [
                    "sagemaker:AddTags",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:CreateModel",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DeleteModel",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                    "sagemaker:InvokeEndpoint",
                    "sagemaker:ListTags",
                    "sagemaker:UpdateEndpoint",
                ],
                [
                    f"{sm}:model/{name_prefix}-*",
                    f"{sm}:endpoint-config/{name_prefix}-*",
                    f"{sm}:endpoint/{name_prefix}-*",
                ],
            ),
            # The rollout prunes retired configurations and models (infra/rollout.py); List
            # actions have no resource-level permissions.
            allow("ListRetired", ["sagemaker:ListEndpointConfigs", "sagemaker:ListModels"], "*"),
            {
                # An endpoint configuration with a KMS key makes SageMaker create a grant on it.
                **allow("GrantKeyToSageMaker", ["kms:CreateGrant"], key_arn),
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                **allow("PassExecutionRole", ["iam:PassRole"], execution_role_arn),
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            allow(
                "ReadAlarms",
                ["cloudwatch:DescribeAlarms"],
                f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name_prefix}-*",
            ),
        ]
    if cluster_arn is not None:
        statements.append(allow("DescribeCluster", ["eks:DescribeCluster"], cluster_arn))
    if training_role_arn is not None:
        statements += training_launch_statements(
            bucket_arn=bucket_arn,
            region=region,
            account_id=account_id,
            name_prefix=name_prefix,
            training_role_arn=training_role_arn,
        )
    if tracking_server_arn is not None:
        statements += mlflow_client_statements(
            tracking_server_arn=tracking_server_arn,
            bucket_arn=bucket_arn if tracking_server_in_bucket else None,
            actions=(*MLFLOW_REGISTER, *MLFLOW_DEPLOY, *MLFLOW_PROMOTE),
        )
    return document(*statements)


def service_pod_policy(*, bucket_arn: str, key_arn: str, secret_arn: str | None) -> Document:
    """What the Kubernetes pods need: read the bundle, decrypt it, read the API key hashes."""
    statements: list[Statement] = [
        allow("ReadModel", ["s3:GetObject"], f"{bucket_arn}/models/*"),
        allow("DecryptModel", ["kms:Decrypt"], key_arn),
    ]
    if secret_arn is not None:
        statements.append(allow("ReadApiKeyHashes", ["secretsmanager:GetSecretValue"], secret_arn))
    return document(*statements)


def eks_secrets_key_policy(*, key_arn: str) -> Document:
    """Cluster role permissions for envelope encryption of Kubernetes secrets."""
    return document(
        allow(
            "EncryptSecrets",
            ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
            key_arn,
        )
    )


def mlflow_server_policy(*, bucket_arn: str, key_arn: str) -> Document:
    """The MLflow tracking server's role: its artifact prefix of the bucket, and the key."""
    return document(
        allow("Artifacts", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/mlflow/*"),
        {
            **allow("ListArtifacts", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": ["mlflow/*"]}},
        },
        allow("UseKey", ["kms:Decrypt", "kms:GenerateDataKey"], key_arn),
    )
