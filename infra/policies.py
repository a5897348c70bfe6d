"""IAM, key, bucket and topic policy documents: pure functions of ARNs and names.

Components call these inside ``Output.apply`` with resolved ARNs; tests call them with example
ARNs and run every document through an IAM linter. Least privilege by construction: each
statement names the actions it needs and the narrowest resources they accept. The only ``*``
resources are for actions AWS does not scope to a resource (``ecr:GetAuthorizationToken``,
``cloudwatch:PutMetricData``, the latter limited by a namespace condition), and key policies,
where ``*`` means "this key".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Document = dict[str, Any]
Statement = dict[str, Any]

VERSION = "2012-10-17"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# Namespace of the app's own CloudWatch metrics (if it publishes any besides Prometheus).
METRICS_NAMESPACE = "mlship"

ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ECR_PUSH = (
    *ECR_PULL,
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
KEY_USE = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
# Key administration, listed action by action (no "kms:Create*": it would include key stores).
KEY_ADMIN = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)

# AWS managed policies attached to the EKS roles (the documented minimum for each role).
EKS_CLUSTER_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
EKS_NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
)
EKS_EDIT_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"


def document(*statements: Statement) -> Document:
    """A policy document with the current policy language version."""
    return {"Version": VERSION, "Statement": list(statements)}


def dumps(doc: Document) -> str:
    """Serialise a document the same way everywhere (stable keys: stable diffs)."""
    return json.dumps(doc, sort_keys=True)


def _allow(sid: str, actions: Sequence[str], resources: Sequence[str] | str) -> Statement:
    res = [resources] if isinstance(resources, str) else list(resources)
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": res[0] if len(res) == 1 else res,
    }


def service_assume_role(service: str, account_id: str | None = None) -> Document:
    """Trust policy letting one AWS service assume a role (optionally only for this account)."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        # Confused-deputy guard: only calls made on behalf of this account.
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return document(statement)


def eks_cluster_assume_role() -> Document:
    """Trust policy of the EKS cluster role (EKS also tags the session)."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    )


def sagemaker_execution_policy(
    *,
    bucket_arn: str,
    repository_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    model_prefix: str = "models/",
    capture_prefix: str = "capture/",
) -> Document:
    """What the SageMaker model needs: read the bundle, write captures, pull, log, use the key."""
    log_group = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/*"
    return document(
        _allow("ReadModel", ["s3:GetObject"], f"{bucket_arn}/{model_prefix}*"),
        _allow("WriteCapture", ["s3:PutObject"], f"{bucket_arn}/{capture_prefix}*"),
        _allow("PullImage", ECR_PULL, repository_arn),
        # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
        _allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        _allow(
            "WriteLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
            log_group,
        ),
        _allow("PutLogEvents", ["logs:PutLogEvents"], f"{log_group}:log-stream:*"),
        {
            **_allow("PutMetrics", ["cloudwatch:PutMetricData"], "*"),
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        },
        _allow("UseKey", KEY_USE, key_arn),
    )


def github_deploy_assume_role(
    *, provider_arn: str, repository: str, environments: Sequence[str]
) -> Document:
    """Trust policy of the deploy role: one repository, branch ``main`` and its environments.

    ``sub`` is matched exactly (``StringEquals``, no wildcards) and ``aud`` must be STS.
    """
    subjects = [f"repo:{repository}:ref:refs/heads/main"] + [
        f"repo:{repository}:environment:{env}" for env in environments
    ]
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": subjects,
                }
            },
        }
    )


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
) -> Document:
    """What CI needs to roll out a new image and bundle, and nothing that creates infrastructure.

    SageMaker target (``execution_role_arn`` set): push the image, upload the bundle, create the
    model and endpoint configuration and update the endpoint (all named ``<prefix>-*``), pass the
    execution role to SageMaker only, read the alarms, invoke the endpoint for smoke tests.
    EKS target (``cluster_arn`` set): push, upload, describe the cluster (Kubernetes RBAC comes
    from the cluster access entry, limited to the service's namespace).
    """
    statements = [
        _allow("PushImage", ECR_PUSH, repository_arn),
        _allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        _allow("UploadBundle", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/models/*"),
        {
            **_allow("ListBundles", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": ["models/*"]}},
        },
        _allow("UseKey", ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"], key_arn),
    ]
    if execution_role_arn is not None:
        sm = f"arn:aws:sagemaker:{region}:{account_id}"
        statements += [
            _allow(
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
            {
                # An endpoint configuration with a KMS key makes SageMaker create a grant on it.
                **_allow("GrantKeyToSageMaker", ["kms:CreateGrant"], key_arn),
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                **_allow("PassExecutionRole", ["iam:PassRole"], execution_role_arn),
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            _allow(
                "ReadAlarms",
                ["cloudwatch:DescribeAlarms"],
                f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name_prefix}-*",
            ),
        ]
    if cluster_arn is not None:
        statements.append(_allow("DescribeCluster", ["eks:DescribeCluster"], cluster_arn))
    return document(*statements)


def irsa_assume_role(
    *, provider_arn: str, issuer_host: str, namespace: str, service_account: str
) -> Document:
    """Trust policy letting exactly one Kubernetes service account assume the role (IRSA)."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{issuer_host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer_host}:aud": STS_AUDIENCE,
                }
            },
        }
    )


def service_pod_policy(*, bucket_arn: str, key_arn: str, secret_arn: str | None) -> Document:
    """What the Kubernetes pods need: read the bundle, decrypt it, read the API key hashes."""
    statements = [
        _allow("ReadModel", ["s3:GetObject"], f"{bucket_arn}/models/*"),
        _allow("DecryptModel", ["kms:Decrypt"], key_arn),
    ]
    if secret_arn is not None:
        statements.append(_allow("ReadApiKeyHashes", ["secretsmanager:GetSecretValue"], secret_arn))
    return document(*statements)


def eks_secrets_key_policy(*, key_arn: str) -> Document:
    """Cluster role permissions for envelope encryption of Kubernetes secrets."""
    return document(
        _allow(
            "EncryptSecrets",
            ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
            key_arn,
        )
    )


def mlflow_server_policy(*, bucket_arn: str, key_arn: str) -> Document:
    """The MLflow tracking server's role: its artifact prefix of the bucket, and the key."""
    return document(
        _allow("Artifacts", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/mlflow/*"),
        {
            **_allow("ListArtifacts", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": ["mlflow/*"]}},
        },
        _allow("UseKey", ["kms:Decrypt", "kms:GenerateDataKey"], key_arn),
    )


def key_policy(*, account_id: str, service_principals: Sequence[str] = ()) -> Document:
    """KMS key policy: the account administers and delegates use through IAM; named services
    (e.g. CloudWatch publishing to an encrypted topic) may use the key. ``*`` means this key.
    """
    root = f"arn:aws:iam::{account_id}:root"
    statements: list[Statement] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": sorted(KEY_ADMIN),
            "Resource": "*",
        },
        {
            "Sid": "AccountDelegatesUse",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
            ],
            "Resource": "*",
        },
    ]
    if service_principals:
        statements.append(
            {
                "Sid": "ServicesUse",
                "Effect": "Allow",
                "Principal": {"Service": sorted(service_principals)},
                # As AWS documents for CloudWatch alarms publishing to an encrypted topic.
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
            }
        )
    return document(*statements)


def tls_only_bucket_policy(*, bucket_arn: str) -> Document:
    """Deny every request to the bucket that does not use TLS."""
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def alarm_topic_policy(*, topic_arn: str, account_id: str) -> Document:
    """Let CloudWatch alarms of this account publish to the alert topic."""
    return document(
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )


def ecr_lifecycle_policy(*, keep_images: int = 30, untagged_days: int = 7) -> Document:
    """ECR lifecycle (not IAM): expire untagged layers after a week, keep the newest images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }
