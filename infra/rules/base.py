"""What every plan rule works on: type tokens, the resource view, findings, document helpers.

Rules read only the wire form Pulumi uses in ``mlship plan`` (the mock runtime's recorded inputs)
and in the policy pack (``pulumi preview --policy-pack``): type tokens and camelCase properties.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
KMS_KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
K8S_SERVICE = "kubernetes:core/v1:Service"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
)
ENVIRONMENT_TAG = "mlship:environment"
# Actions AWS does not scope to resources: "*" is the only Resource they accept.
UNSCOPABLE_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"})
READ_ONLY_PREFIXES = ("Describe", "Get", "List")
# Actions the SageMaker guide grants an execution role on "*" for a model in a VPC ("Give
# SageMaker AI Hosted Endpoints Access to Resources in Your Amazon VPC"): SageMaker creates the
# network interfaces, so there is nothing to scope them to beforehand.
SAGEMAKER_VPC_ACTIONS = frozenset(
    {
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
    }
)


class Resource(Protocol):
    """What a rule may look at: the type token, logical name, URN and inputs."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def inputs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Finding:
    """One policy violation on one resource."""

    rule: str
    resource: str
    message: str
    urn: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {
            "rule": self.rule,
            "resource": self.resource,
            "message": self.message,
            "urn": self.urn,
        }


Rule = Callable[[Sequence[Resource]], Iterator[Finding]]


def of_type(resources: Sequence[Resource], type_: str) -> list[Resource]:
    """The resources of one type token, in plan order."""
    return [r for r in resources if r.type == type_]


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``, or None where the path does not exist."""
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and len(value) > part else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def for_bucket(resources: Sequence[Resource], type_: str, bucket: Resource) -> list[Resource]:
    """The resources of ``type_`` that configure ``bucket`` (by its name or logical name)."""
    names = {bucket.inputs.get("bucket"), bucket.name}
    return [r for r in of_type(resources, type_) if r.inputs.get("bucket") in names]


def finding(rule: str, r: Resource, message: str) -> Finding:
    """A finding of ``rule`` on ``r``."""
    return Finding(rule.removeprefix("rule_"), f"{r.type} {r.name}", message, r.urn)


def statements(policy: Any) -> list[dict[str, Any]]:
    """The statements of a policy document (JSON text or parsed), [] if it is not one."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except json.JSONDecodeError:
            return []
    found = policy.get("Statement", []) if isinstance(policy, dict) else []
    return list([found] if isinstance(found, dict) else found)


def listify(value: Any) -> list[str]:
    """An IAM element that may be one string or a list of them, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def policy_documents(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str, Any]]:
    """Every policy document in the plan: (resource, kind, document).

    ``kind`` is ``identity`` (role policies), ``trust`` (assume-role policies) or ``resource``
    (key, bucket and topic policies).
    """
    for r in resources:
        if r.type in (ROLE_POLICY, MANAGED_POLICY):
            yield r, "identity", r.inputs.get("policy")
        elif r.type == ROLE:
            yield r, "trust", r.inputs.get("assumeRolePolicy")
            for inline in r.inputs.get("inlinePolicies") or []:
                yield r, "identity", dig(inline, "policy")
        elif r.type in (KMS_KEY, BUCKET_POLICY, TOPIC_POLICY) and r.inputs.get("policy"):
            yield r, "resource", r.inputs.get("policy")


def by_name(resources: Sequence[Resource], type_: str, prop: str = "name") -> dict[Any, Resource]:
    """The resources of ``type_`` by the value of their ``prop`` input (their AWS name)."""
    return {r.inputs.get(prop): r for r in of_type(resources, type_)}
