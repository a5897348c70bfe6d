"""Policy rules over planned resources: each is a function of every resource's type and inputs.

The same functions run in ``mlship plan`` (over the inputs the mock runtime recorded) and in the
Pulumi policy pack of ``infra/policypack`` (over ``pulumi preview --policy-pack`` resources), so
they read only the wire form Pulumi uses in both places: type tokens and camelCase properties.
``security`` holds the security rules; ``sagemaker``, ``metrics`` and ``eks`` the documented AWS
and Kubernetes rules a deploy runs into (each citing its page); ``iam`` evaluates role policies
for them; ``base`` has the types and helpers they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.rules.base import (
    ALARM,
    BUCKET,
    BUCKET_PAB,
    BUCKET_POLICY,
    BUCKET_SSE,
    BUCKET_VERSIONING,
    ECR_REPOSITORY,
    EKS_CLUSTER,
    ENDPOINT,
    ENDPOINT_CONFIG,
    ENVIRONMENT_TAG,
    K8S_SERVICE,
    KMS_KEY,
    MANAGED_POLICY,
    ROLE,
    ROLE_POLICY,
    TOPIC_POLICY,
    WORKLOADS,
    Finding,
    Resource,
    Rule,
    policy_documents,
)
from infra.rules.eks import (
    rule_hpa_has_metrics,
    rule_hpa_owns_replicas,
    rule_network_policy_enforced,
)
from infra.rules.metrics import rule_alarm_metric_is_published
from infra.rules.sagemaker import (
    rule_autoscaling_not_on_burstable,
    rule_rollback_alarms_readable,
    rule_rollback_alarms_watch_the_endpoint,
    rule_vpc_model_manages_network_interfaces,
)
from infra.rules.security import (
    rule_alarm_actions_enabled,
    rule_bucket_encrypted,
    rule_bucket_public_access_blocked,
    rule_bucket_tls_only,
    rule_bucket_versioned,
    rule_data_capture_in_prod,
    rule_ecr_immutable_tags,
    rule_ecr_scan_on_push,
    rule_eks_secrets_encrypted,
    rule_endpoint_auto_rollback,
    rule_endpoint_has_alarms,
    rule_iam_no_wildcard_actions,
    rule_iam_no_writes_on_star,
    rule_kms_rotation,
    rule_workloads_non_root,
)

__all__ = [
    "ALARM",
    "BUCKET",
    "BUCKET_PAB",
    "BUCKET_POLICY",
    "BUCKET_SSE",
    "BUCKET_VERSIONING",
    "ECR_REPOSITORY",
    "EKS_CLUSTER",
    "ENDPOINT",
    "ENDPOINT_CONFIG",
    "ENVIRONMENT_TAG",
    "K8S_SERVICE",
    "KMS_KEY",
    "MANAGED_POLICY",
    "ROLE",
    "ROLE_POLICY",
    "RULES",
    "TOPIC_POLICY",
    "WORKLOADS",
    "Finding",
    "PolicyView",
    "Resource",
    "Rule",
    "evaluate",
    "from_policy_resources",
    "policy_documents",
    "rule_alarm_actions_enabled",
    "rule_alarm_metric_is_published",
    "rule_autoscaling_not_on_burstable",
    "rule_bucket_encrypted",
    "rule_bucket_public_access_blocked",
    "rule_bucket_tls_only",
    "rule_bucket_versioned",
    "rule_data_capture_in_prod",
    "rule_ecr_immutable_tags",
    "rule_ecr_scan_on_push",
    "rule_eks_secrets_encrypted",
    "rule_endpoint_auto_rollback",
    "rule_endpoint_has_alarms",
    "rule_hpa_has_metrics",
    "rule_hpa_owns_replicas",
    "rule_iam_no_wildcard_actions",
    "rule_iam_no_writes_on_star",
    "rule_id",
    "rule_kms_rotation",
    "rule_network_policy_enforced",
    "rule_rollback_alarms_readable",
    "rule_rollback_alarms_watch_the_endpoint",
    "rule_vpc_model_manages_network_interfaces",
    "rule_workloads_non_root",
]

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
    # Documented AWS / Kubernetes rules (sagemaker.py, metrics.py, eks.py; each cites its page).
    rule_autoscaling_not_on_burstable,
    rule_rollback_alarms_watch_the_endpoint,
    rule_rollback_alarms_readable,
    rule_alarm_metric_is_published,
    rule_vpc_model_manages_network_interfaces,
    rule_hpa_owns_replicas,
    rule_network_policy_enforced,
    rule_hpa_has_metrics,
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
