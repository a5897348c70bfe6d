"""IAM, key, bucket and topic policy documents: pure functions of ARNs and names.

Components call these inside ``Output.apply`` with resolved ARNs; tests call them with example
ARNs and run every document through an IAM linter. ``document`` is the policy language,
``trust`` says who may assume each role, ``identity`` what each role may do (``training``: the
training jobs' role and CI's training and registry statements; ``actions``: shared action
lists), ``resource`` who may use the key, the bucket and the topic (in key policies ``*``
means "this key").
"""

from __future__ import annotations

from infra.policies.actions import (
    ECR_PULL,
    ECR_PUSH,
    KEY_USE,
    MLFLOW_DEPLOY,
    MLFLOW_PROMOTE,
    MLFLOW_REGISTER,
)
from infra.policies.automation import (
    batch_job_policy,
    batch_pipeline_policy,
    invoke_api_destination_policy,
    start_pipeline_policy,
)
from infra.policies.document import VERSION, Document, Statement, allow, document, dumps
from infra.policies.identity import (
    EKS_CLUSTER_POLICY,
    EKS_EDIT_ACCESS_POLICY,
    EKS_NODE_POLICIES,
    METRICS_NAMESPACE,
    SAGEMAKER_INSTANCE_NAMESPACE,
    SAGEMAKER_VPC_ACTIONS,
    deploy_policy,
    eks_secrets_key_policy,
    mlflow_server_policy,
    sagemaker_execution_policy,
    service_pod_policy,
)
from infra.policies.resource import (
    KEY_ADMIN,
    alarm_topic_policy,
    ecr_lifecycle_policy,
    key_policy,
    tls_only_bucket_policy,
)
from infra.policies.training import (
    mlflow_client_statements,
    training_job_policy,
    training_launch_statements,
)
from infra.policies.trust import (
    GITHUB_OIDC_HOST,
    STS_AUDIENCE,
    eks_cluster_assume_role,
    github_deploy_assume_role,
    irsa_assume_role,
    service_assume_role,
)

__all__ = [
    "ECR_PULL",
    "ECR_PUSH",
    "EKS_CLUSTER_POLICY",
    "EKS_EDIT_ACCESS_POLICY",
    "EKS_NODE_POLICIES",
    "GITHUB_OIDC_HOST",
    "KEY_ADMIN",
    "KEY_USE",
    "METRICS_NAMESPACE",
    "MLFLOW_DEPLOY",
    "MLFLOW_PROMOTE",
    "MLFLOW_REGISTER",
    "SAGEMAKER_INSTANCE_NAMESPACE",
    "SAGEMAKER_VPC_ACTIONS",
    "STS_AUDIENCE",
    "VERSION",
    "Document",
    "Statement",
    "alarm_topic_policy",
    "allow",
    "batch_job_policy",
    "batch_pipeline_policy",
    "deploy_policy",
    "document",
    "dumps",
    "ecr_lifecycle_policy",
    "eks_cluster_assume_role",
    "eks_secrets_key_policy",
    "github_deploy_assume_role",
    "invoke_api_destination_policy",
    "irsa_assume_role",
    "key_policy",
    "mlflow_client_statements",
    "mlflow_server_policy",
    "sagemaker_execution_policy",
    "service_assume_role",
    "service_pod_policy",
    "start_pipeline_policy",
    "tls_only_bucket_policy",
    "training_job_policy",
    "training_launch_statements",
]
