"""Policy rules over planned resources: each is a function of every resource's type and inputs.

The same functions run in ``mlship plan`` (over the inputs the mock runtime recorded) and in the
Pulumi policy pack of ``infra/policypack`` (over ``pulumi preview --policy-pack`` resources), so
they read only the wire form Pulumi uses in both places: type tokens and camelCase properties.
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


def _of(resources: Sequence[Resource], type_: str) -> list[Resource]:
    return [r for r in resources if r.type == type_]


def _get(value: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and len(value) > part else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _for_bucket(resources: Sequence[Resource], type_: str, bucket: Resource) -> list[Resource]:
    names = {bucket.inputs.get("bucket"), bucket.name}
    return [r for r in _of(resources, type_) if r.inputs.get("bucket") in names]


def _finding(rule: str, r: Resource, message: str) -> Finding:
    return Finding(rule.removeprefix("rule_"), f"{r.type} {r.name}", message, r.urn)


def rule_bucket_encrypted(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket has default SSE-KMS encryption."""
    for b in _of(resources, BUCKET):
        ok = any(
            _get(c.inputs, "rules", 0, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            in ("aws:kms", "aws:kms:dsse")
            for c in _for_bucket(resources, BUCKET_SSE, b)
        )
        if not ok:
            yield _finding("bucket_encrypted", b, "no SSE-KMS default encryption")


def rule_bucket_versioned(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket keeps object versions."""
    for b in _of(resources, BUCKET):
        ok = any(
            _get(v.inputs, "versioningConfiguration", "status") == "Enabled"
            for v in _for_bucket(resources, BUCKET_VERSIONING, b)
        )
        if not ok:
            yield _finding("bucket_versioned", b, "versioning is not enabled")


def rule_bucket_public_access_blocked(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket has all four public access block settings on."""
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for b in _of(resources, BUCKET):
        ok = any(
            all(p.inputs.get(f) is True for f in flags)
            for p in _for_bucket(resources, BUCKET_PAB, b)
        )
        if not ok:
            yield _finding("bucket_public_access_blocked", b, "public access is not fully blocked")


def rule_bucket_tls_only(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket policy denies requests without TLS."""
    for b in _of(resources, BUCKET):
        ok = False
        for p in _for_bucket(resources, BUCKET_POLICY, b):
            for st in _statements(p.inputs.get("policy")):
                cond = _get(st, "Condition", "Bool", "aws:SecureTransport")
                if st.get("Effect") == "Deny" and str(cond).lower() == "false":
                    ok = True
        if not ok:
            yield _finding("bucket_tls_only", b, "no policy denies aws:SecureTransport=false")


def rule_ecr_scan_on_push(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every ECR repository scans images on push."""
    for r in _of(resources, ECR_REPOSITORY):
        if _get(r.inputs, "imageScanningConfiguration", "scanOnPush") is not True:
            yield _finding("ecr_scan_on_push", r, "scan on push is off")


def rule_ecr_immutable_tags(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every ECR repository has immutable tags."""
    for r in _of(resources, ECR_REPOSITORY):
        if r.inputs.get("imageTagMutability") != "IMMUTABLE":
            yield _finding("ecr_immutable_tags", r, "tags are mutable")


def rule_kms_rotation(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every KMS key rotates."""
    for k in _of(resources, KMS_KEY):
        if k.inputs.get("enableKeyRotation") is not True:
            yield _finding("kms_rotation", k, "key rotation is off")


def _statements(policy: Any) -> list[dict[str, Any]]:
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except json.JSONDecodeError:
            return []
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    return [s for s in ([statements] if isinstance(statements, dict) else statements)]


def _listify(value: Any) -> list[str]:
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
                yield r, "identity", _get(inline, "policy")
        elif r.type in (KMS_KEY, BUCKET_POLICY, TOPIC_POLICY) and r.inputs.get("policy"):
            yield r, "resource", r.inputs.get("policy")


def rule_iam_no_wildcard_actions(resources: Sequence[Resource]) -> Iterator[Finding]:
    """No Allow statement grants ``*`` or ``service:*`` actions (or uses NotAction)."""
    for r, _kind, doc in policy_documents(resources):
        for st in _statements(doc):
            if st.get("Effect") != "Allow":
                continue
            if "NotAction" in st:
                yield _finding("iam_no_wildcard_actions", r, "Allow with NotAction")
            for action in _listify(st.get("Action")):
                if action == "*" or action.endswith(":*"):
                    yield _finding("iam_no_wildcard_actions", r, f"allows {action!r}")


def rule_iam_no_writes_on_star(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Identity policies grant on ``*`` only reads or actions AWS cannot scope to a resource."""
    for r, kind, doc in policy_documents(resources):
        if kind != "identity":
            continue  # in key policies "*" means "this key"; trust policies have no Resource
        for st in _statements(doc):
            if st.get("Effect") != "Allow" or "*" not in _listify(st.get("Resource")):
                continue
            for action in _listify(st.get("Action")):
                verb = action.split(":", 1)[-1]
                if action not in UNSCOPABLE_ACTIONS and not verb.startswith(READ_ONLY_PREFIXES):
                    yield _finding("iam_no_writes_on_star", r, f"allows {action} on '*'")


def rule_alarm_actions_enabled(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every alarm notifies someone: actions enabled and at least one alarm action."""
    for a in _of(resources, ALARM):
        if a.inputs.get("actionsEnabled") is False or not a.inputs.get("alarmActions"):
            yield _finding("alarm_actions_enabled", a, "alarm has no enabled actions")


def rule_endpoint_has_alarms(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every SageMaker endpoint and Kubernetes service is watched by alarms with actions."""
    alarms = [
        a
        for a in _of(resources, ALARM)
        if a.inputs.get("actionsEnabled", True) is not False and a.inputs.get("alarmActions")
    ]
    watched = {
        (dim, value) for a in alarms for dim, value in (a.inputs.get("dimensions") or {}).items()
    }
    for e in _of(resources, ENDPOINT):
        if ("EndpointName", e.inputs.get("name")) not in watched:
            yield _finding("endpoint_has_alarms", e, "no alarm with actions watches it")
    for s in _of(resources, K8S_SERVICE):
        if ("Service", _get(s.inputs, "metadata", "name")) not in watched:
            yield _finding("endpoint_has_alarms", s, "no alarm with actions watches it")


def rule_endpoint_auto_rollback(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Blue/green endpoint updates roll back on alarms."""
    for e in _of(resources, ENDPOINT):
        policy = _get(e.inputs, "deploymentConfig", "blueGreenUpdatePolicy")
        alarms = _get(e.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
        if policy is not None and not alarms:
            yield _finding("endpoint_auto_rollback", e, "blue/green update without rollback")


def rule_data_capture_in_prod(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Production endpoint configurations capture every request."""
    for c in _of(resources, ENDPOINT_CONFIG):
        env = str((c.inputs.get("tags") or {}).get(ENVIRONMENT_TAG, ""))
        if not env.startswith("prod"):
            continue
        capture = c.inputs.get("dataCaptureConfig") or {}
        if (
            capture.get("enableCapture") is not True
            or capture.get("initialSamplingPercentage") != 100
        ):
            yield _finding("data_capture_in_prod", c, "production must capture 100%")


def rule_eks_secrets_encrypted(resources: Sequence[Resource]) -> Iterator[Finding]:
    """EKS clusters envelope-encrypt Kubernetes secrets with KMS."""
    for c in _of(resources, EKS_CLUSTER):
        configs = c.inputs.get("encryptionConfig")
        if not configs or "secrets" not in (_get(configs, "resources") or []):
            yield _finding("eks_secrets_encrypted", c, "secrets are not KMS-encrypted")


def rule_workloads_non_root(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Kubernetes workloads run as non-root, without privilege escalation, read-only root FS."""
    for w in resources:
        if w.type not in WORKLOADS:
            continue
        pod = _get(w.inputs, "spec", "template", "spec") or {}
        pod_non_root = _get(pod, "securityContext", "runAsNonRoot") is True
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            sc = c.get("securityContext") or {}
            problems = []
            if not (sc.get("runAsNonRoot") is True or (pod_non_root and "runAsNonRoot" not in sc)):
                problems.append("may run as root")
            if sc.get("runAsUser") == 0:
                problems.append("runs as uid 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allows privilege escalation")
            if sc.get("privileged") is True:
                problems.append("is privileged")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("has a writable root filesystem")
            if problems:
                yield _finding(
                    "workloads_non_root", w, f"container {c.get('name')}: {', '.join(problems)}"
                )


RULES: tuple[Rule, ...] = (
    rule_bucket_encrypted,
    rule_bucket_versioned,
    rule_bucket_public_access_blocked,
    rule_bucket_tls_only,
    rule_ecr_scan_on_push,
    rule_ecr_immutable_tags,
    rule_kms_rotation,
    rule_iam_no_wildcard_actions,
    rule_iam_no_writes_on_star,
    rule_alarm_actions_enabled,
    rule_endpoint_has_alarms,
    rule_endpoint_auto_rollback,
    rule_data_capture_in_prod,
    rule_eks_secrets_encrypted,
    rule_workloads_non_root,
)


@dataclass(frozen=True)
class PolicyView:
    """A resource as a Pulumi policy pack sees it (``PolicyResource``), in the rules' terms."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]


def from_policy_resources(resources: Sequence[Any]) -> list[PolicyView]:
    """Adapt ``pulumi_policy.PolicyResource`` objects (resource_type, name, urn, props)."""
    return [PolicyView(r.resource_type, r.name, r.urn, dict(r.props or {})) for r in resources]


def rule_id(rule: Rule) -> str:
    """The rule's name as a policy-pack policy name, e.g. ``bucket-encrypted``."""
    return rule.__name__.removeprefix("rule_").replace("_", "-")


def evaluate(resources: Sequence[Resource]) -> list[Finding]:
    """Every finding of every rule."""
    return [f for rule in RULES for f in rule(resources)]
