"""Documented AWS and Kubernetes rules a deploy runs into: each mocks accept, the cloud refuses.

Every rule cites the page that states it. They read the same wire form as the security rules
(type tokens, camelCase inputs) and follow references by name: an endpoint names its
configuration, a configuration its models, a model its execution role, a role policy its role.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from infra.rules.base import (
    ALARM,
    ENDPOINT,
    ENDPOINT_CONFIG,
    ROLE,
    ROLE_POLICY,
    Finding,
    Resource,
    dig,
    finding,
    listify,
    of_type,
    statements,
)

MODEL = "aws:sagemaker/model:Model"
SCALING_TARGET = "aws:appautoscaling/target:Target"
EKS_ADDON = "aws:eks/addon:Addon"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_SERVICE = "kubernetes:core/v1:Service"
BURSTABLE = re.compile(r"^ml\.t\d[a-z]*\.")
SAGEMAKER_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
# The SageMaker guide's VPC policy for an execution role ("Give SageMaker AI Hosted Endpoints
# Access to Resources in Your Amazon VPC").
VPC_ACTIONS = (
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
# Metrics an alarm may watch: (namespace, metric) -> the dimension sets the documentation lists.
# SageMaker: "Monitor Amazon SageMaker AI with Amazon CloudWatch" (endpoint invocation metrics in
# AWS/SageMaker; endpoint instance metrics in /aws/sagemaker/Endpoints), both by EndpointName and
# VariantName. Container Insights: "Amazon EKS and Kubernetes Container Insights metrics".
_ENDPOINT_DIMS = frozenset({"EndpointName", "VariantName"})
_POD = frozenset({"ClusterName", "Namespace", "PodName"})
_POD_SETS = (
    _POD,
    frozenset({"ClusterName", "Namespace"}),
    frozenset({"ClusterName", "Namespace", "Service"}),
    frozenset({"ClusterName"}),
)
DOCUMENTED_METRICS: dict[tuple[str, str], tuple[frozenset[str], ...]] = {
    **{
        ("AWS/SageMaker", m): (_ENDPOINT_DIMS,)
        for m in (
            "Invocations",
            "InvocationsPerInstance",
            "Invocation4XXErrors",
            "Invocation5XXErrors",
            "ModelLatency",
            "OverheadLatency",
        )
    },
    **{
        (SAGEMAKER_INSTANCE_NAMESPACE, m): (_ENDPOINT_DIMS,)
        for m in ("CPUUtilization", "MemoryUtilization", "DiskUtilization")
    },
    **{
        ("ContainerInsights", m): _POD_SETS
        for m in ("pod_cpu_utilization", "pod_memory_utilization")
    },
    ("ContainerInsights", "pod_number_of_container_restarts"): (_POD,),
    ("ContainerInsights", "service_number_of_running_pods"): (
        frozenset({"ClusterName", "Namespace", "Service"}),
        frozenset({"ClusterName"}),
    ),
}
# Container Insights on EKS comes from this add-on ("Quick Start with the Amazon CloudWatch
# Observability EKS add-on").
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"


def _by_name(resources: Sequence[Resource], type_: str, prop: str = "name") -> dict[Any, Resource]:
    return {r.inputs.get(prop): r for r in of_type(resources, type_)}


def _endpoint_config(resources: Sequence[Resource], endpoint: Resource) -> Resource | None:
    return _by_name(resources, ENDPOINT_CONFIG).get(endpoint.inputs.get("endpointConfigName"))


def _variants(config: Resource | None) -> list[dict[str, Any]]:
    return list(config.inputs.get("productionVariants") or []) if config is not None else []


def _role_documents(resources: Sequence[Resource], role_arn: Any) -> list[Any]:
    """Every identity policy of the role ``role_arn`` names (inline and role policies)."""
    name = str(role_arn).rsplit("/", 1)[-1]
    docs: list[Any] = [
        r.inputs.get("policy")
        for r in of_type(resources, ROLE_POLICY)
        if r.inputs.get("role") in (name, role_arn)
    ]
    for role in of_type(resources, ROLE):
        if role.inputs.get("name") == name:
            docs += [dig(p, "policy") for p in role.inputs.get("inlinePolicies") or []]
    return docs


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """StringEquals / StringLike conditions on the keys of ``context``; any other operator or
    key is not known here, so the statement does not count as granting."""
    for operator, clauses in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            return False
        for key, expected in clauses.items():
            if key not in context:
                return False
            values = listify(expected)
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], v) for v in values):
                return False
    return True


def iam_allows(
    documents: Sequence[Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether one Allow statement of ``documents`` grants ``action`` on ``resource`` (with the
    request's condition keys in ``context``); an explicit Deny of it wins."""
    allowed = False
    for doc in documents:
        for st in statements(doc):
            actions = [a.lower() for a in listify(st.get("Action"))]
            if not any(fnmatchcase(action.lower(), a) for a in actions):
                continue
            if not any(fnmatchcase(resource, p) for p in listify(st.get("Resource"))):
                continue
            if not _condition_holds(st.get("Condition") or {}, context or {}):
                continue
            if st.get("Effect") == "Deny":
                return False
            allowed = allowed or st.get("Effect") == "Allow"
    return allowed


def _models_of(resources: Sequence[Resource], endpoint: Resource) -> list[Resource]:
    models = _by_name(resources, MODEL)
    return [
        models[v.get("modelName")]
        for v in _variants(_endpoint_config(resources, endpoint))
        if v.get("modelName") in models
    ]


def _alarm_arn(alarm: Resource, fallback_region: str, fallback_account: str) -> str:
    """An alarm's ARN. Its region and account are those of its SNS actions (an alarm notifies
    topics of its own region), else the fallbacks."""
    for action in alarm.inputs.get("alarmActions") or []:
        parts = str(action).split(":")
        if len(parts) >= 6 and parts[2] == "sns":
            fallback_region, fallback_account = parts[3], parts[4]
            break
    return (
        f"arn:aws:cloudwatch:{fallback_region}:{fallback_account}:alarm:{alarm.inputs.get('name')}"
    )


def rule_autoscaling_not_on_burstable(resources: Sequence[Resource]) -> Iterator[Finding]:
    """No scaling target on a variant of burstable instances (SageMaker refuses to register it)."""
    # SageMaker Developer Guide, "Configure model auto scaling with the console": registration
    # checks "You aren't registering a variant with an instance that is a burstable performance
    # instance such as T2"; SageMaker doesn't support auto scaling for burstable instances.
    endpoints = _by_name(resources, ENDPOINT)
    for target in of_type(resources, SCALING_TARGET):
        match = re.match(
            r"^endpoint/([^/]+)/variant/([^/]+)$", str(target.inputs.get("resourceId"))
        )
        if target.inputs.get("serviceNamespace") != "sagemaker" or match is None:
            continue
        endpoint = endpoints.get(match.group(1))
        config = _endpoint_config(resources, endpoint) if endpoint is not None else None
        for variant in _variants(config):
            if variant.get("variantName") == match.group(2) and BURSTABLE.match(
                str(variant.get("instanceType"))
            ):
                yield finding(
                    "autoscaling_not_on_burstable",
                    target,
                    f"variant {match.group(2)} runs burstable {variant['instanceType']}, which "
                    "SageMaker does not auto scale",
                )


def rule_rollback_alarms_watch_the_endpoint(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every auto-rollback alarm exists in the stack and watches the endpoint it guards."""
    # SageMaker Developer Guide, "Auto-Rollback Configuration and Monitoring": auto-rollback only
    # works with CloudWatch alarms "that can monitor an endpoint"; AutoRollbackConfig: 1-10.
    alarms = _by_name(resources, ALARM)
    for endpoint in of_type(resources, ENDPOINT):
        names = [
            a.get("alarmName")
            for a in dig(endpoint.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
            or []
        ]
        for name in names:
            alarm = alarms.get(name)
            if alarm is None:
                yield finding(
                    "rollback_alarms_watch_the_endpoint", endpoint, f"no alarm named {name}"
                )
            elif (alarm.inputs.get("dimensions") or {}).get("EndpointName") != endpoint.inputs.get(
                "name"
            ):
                yield finding(
                    "rollback_alarms_watch_the_endpoint",
                    endpoint,
                    f"rollback alarm {name} does not watch this endpoint",
                )


def rule_rollback_alarms_readable(resources: Sequence[Resource]) -> Iterator[Finding]:
    """The execution role may ``cloudwatch:DescribeAlarms`` every auto-rollback alarm."""
    # SageMaker Developer Guide, "Auto-Rollback Configuration and Monitoring": "Ensure that your
    # IAM execution role has permission to perform the cloudwatch:DescribeAlarms action on the
    # auto-rollback alarms you specify" (also in "CreateModel API: Execution Role Permissions").
    alarms = _by_name(resources, ALARM)
    for endpoint in of_type(resources, ENDPOINT):
        names = [
            a.get("alarmName")
            for a in dig(endpoint.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
            or []
        ]
        for model in _models_of(resources, endpoint):
            role_arn = str(model.inputs.get("executionRoleArn"))
            account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else "*"
            docs = _role_documents(resources, role_arn)
            for name in names:
                alarm = alarms.get(name)
                arn = (
                    _alarm_arn(alarm, "*", account)
                    if alarm is not None
                    else f"arn:aws:cloudwatch:*:{account}:alarm:{name}"
                )
                if not iam_allows(docs, "cloudwatch:DescribeAlarms", arn):
                    yield finding(
                        "rollback_alarms_readable",
                        model,
                        f"execution role cannot cloudwatch:DescribeAlarms {name}: SageMaker "
                        "cannot evaluate it, so no rollback happens",
                    )


def rule_alarm_metric_is_published(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every alarm watches a documented metric that something in the stack publishes."""
    endpoints = _by_name(resources, ENDPOINT)
    clusters = _by_name(resources, EKS_CLUSTER)
    observed = {
        a.inputs.get("clusterName")
        for a in of_type(resources, EKS_ADDON)
        if a.inputs.get("addonName") == OBSERVABILITY_ADDON
    }
    for alarm in of_type(resources, ALARM):
        namespace, metric = alarm.inputs.get("namespace"), alarm.inputs.get("metricName")
        dims: dict[str, str] = dict(alarm.inputs.get("dimensions") or {})
        documented = DOCUMENTED_METRICS.get((str(namespace), str(metric)))
        if documented is None or frozenset(dims) not in documented:
            yield finding(
                "alarm_metric_is_published",
                alarm,
                f"{namespace} {metric} by {sorted(dims)} is not a documented metric",
            )
            continue
        if namespace == "ContainerInsights":
            if dims.get("ClusterName") not in clusters:
                yield finding(
                    "alarm_metric_is_published", alarm, "ClusterName is no cluster of the stack"
                )
            elif dims.get("ClusterName") not in observed:
                # Container Insights needs the CloudWatch agent: the observability add-on.
                yield finding(
                    "alarm_metric_is_published",
                    alarm,
                    f"cluster has no {OBSERVABILITY_ADDON} add-on to publish Container Insights",
                )
            continue
        yield from _sagemaker_metric_findings(resources, alarm, dims, endpoints)


def _sagemaker_metric_findings(
    resources: Sequence[Resource],
    alarm: Resource,
    dims: Mapping[str, str],
    endpoints: Mapping[Any, Resource],
) -> Iterator[Finding]:
    endpoint = endpoints.get(dims.get("EndpointName"))
    if endpoint is None:
        yield finding(
            "alarm_metric_is_published", alarm, "EndpointName is no endpoint of the stack"
        )
        return
    variant = next(
        (
            v
            for v in _variants(_endpoint_config(resources, endpoint))
            if v.get("variantName") == dims.get("VariantName")
        ),
        None,
    )
    if variant is None:
        yield finding("alarm_metric_is_published", alarm, "VariantName is no variant of it")
        return
    if alarm.inputs.get("namespace") != SAGEMAKER_INSTANCE_NAMESPACE:
        return
    if variant.get("serverlessConfig"):
        # Serverless endpoints have no instances, so no instance metrics.
        yield finding("alarm_metric_is_published", alarm, "serverless variants have no instances")
        return
    # The CreateModel execution-role policy of the SageMaker guide grants cloudwatch:PutMetricData;
    # a namespace condition that leaves out the instance-metrics namespace could keep the alarm
    # without data, and with treatMissingData=notBreaching it would never fire.
    for model in _models_of(resources, endpoint):
        docs = _role_documents(resources, model.inputs.get("executionRoleArn"))
        context = {"cloudwatch:namespace": SAGEMAKER_INSTANCE_NAMESPACE}
        if not iam_allows(docs, "cloudwatch:PutMetricData", "*", context):
            yield finding(
                "alarm_metric_is_published",
                alarm,
                f"execution role may not put metrics in {SAGEMAKER_INSTANCE_NAMESPACE}",
            )


def rule_vpc_model_manages_network_interfaces(
    resources: Sequence[Resource],
) -> Iterator[Finding]:
    """A model in a VPC has an execution role that may create its network interfaces."""
    # SageMaker Developer Guide, "Give SageMaker AI Hosted Endpoints Access to Resources in Your
    # Amazon VPC": the execution role of a model with VpcConfig needs these EC2 permissions.
    for model in of_type(resources, MODEL):
        if not dig(model.inputs, "vpcConfig", "subnets"):
            continue
        docs = _role_documents(resources, model.inputs.get("executionRoleArn"))
        missing = [a for a in VPC_ACTIONS if not iam_allows(docs, a, "*")]
        if missing:
            yield finding(
                "vpc_model_manages_network_interfaces",
                model,
                f"execution role lacks {', '.join(missing)}",
            )


def rule_hpa_owns_replicas(resources: Sequence[Resource]) -> Iterator[Finding]:
    """A Deployment scaled by an HPA does not set ``spec.replicas``."""
    # Kubernetes, "Horizontal Pod Autoscaling", Migrating Deployments and StatefulSets to
    # horizontal autoscaling: when an HPA is enabled, remove spec.replicas from the manifest, or
    # every apply resets the replica count the HPA chose.
    scaled = {
        (dig(h.inputs, "metadata", "namespace"), dig(h.inputs, "spec", "scaleTargetRef", "name"))
        for h in of_type(resources, HPA)
        if dig(h.inputs, "spec", "scaleTargetRef", "kind") == "Deployment"
    }
    for d in of_type(resources, DEPLOYMENT):
        key = (dig(d.inputs, "metadata", "namespace"), dig(d.inputs, "metadata", "name"))
        if key in scaled and dig(d.inputs, "spec", "replicas") is not None:
            yield finding("hpa_owns_replicas", d, "sets spec.replicas while an HPA scales it")


def _addon(resources: Sequence[Resource], cluster: Resource, name: str) -> Resource | None:
    return next(
        (
            a
            for a in of_type(resources, EKS_ADDON)
            if a.inputs.get("addonName") == name
            and a.inputs.get("clusterName") == cluster.inputs.get("name")
        ),
        None,
    )


def rule_network_policy_enforced(resources: Sequence[Resource]) -> Iterator[Finding]:
    """NetworkPolicies are enforced: the cluster's vpc-cni add-on has network policy on."""
    # Amazon EKS User Guide, "Limit Pod traffic with Kubernetes network policies": the Amazon VPC
    # CNI enforces them only when its add-on is configured with enableNetworkPolicy "true"
    # (off by default); without it a NetworkPolicy is accepted and ignored.
    if not of_type(resources, NETWORK_POLICY):
        return
    for cluster in of_type(resources, EKS_CLUSTER):
        addon = _addon(resources, cluster, "vpc-cni")
        values: Any = (
            addon.inputs.get("configurationValues") if addon is not None else None
        ) or "{}"
        try:
            enabled = str(json.loads(values or "{}").get("enableNetworkPolicy")).lower() == "true"
        except (json.JSONDecodeError, AttributeError):
            enabled = False
        if not enabled:
            yield finding(
                "network_policy_enforced",
                cluster,
                "NetworkPolicy objects exist but the vpc-cni add-on does not enable network policy",
            )


def rule_hpa_has_metrics(resources: Sequence[Resource]) -> Iterator[Finding]:
    """An HPA on CPU or memory has a metrics server to read them from."""
    # Amazon EKS User Guide, "View resource usage with the Kubernetes Metrics Server": it "isn't
    # deployed by default in Amazon EKS clusters", and the Horizontal Pod Autoscaler needs it for
    # resource metrics (Kubernetes, "Resource metrics pipeline").
    resource_hpas = [
        h
        for h in of_type(resources, HPA)
        if any(m.get("type") == "Resource" for m in dig(h.inputs, "spec", "metrics") or [])
    ]
    if not resource_hpas:
        return
    for cluster in of_type(resources, EKS_CLUSTER):
        if _addon(resources, cluster, "metrics-server") is None:
            yield finding(
                "hpa_has_metrics",
                cluster,
                "an HPA scales on resource metrics but the cluster has no metrics-server add-on",
            )
