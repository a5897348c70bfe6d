"""Every alarm watches a metric that exists and that something in the stack publishes.

An alarm on a metric nobody publishes never fires (with ``treatMissingData: notBreaching`` it
stays OK forever); mocks accept any namespace, name and dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from infra.rules.base import ALARM, ENDPOINT, Finding, Resource, by_name, finding, of_type
from infra.rules.iam import iam_allows, role_documents
from infra.rules.sagemaker import endpoint_config, models_of, variants

EKS_ADDON = "aws:eks/addon:Addon"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
SAGEMAKER_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
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
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
# Container Insights on EKS comes from this add-on ("Quick Start with the Amazon CloudWatch
# Observability EKS add-on").
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"


def rule_alarm_metric_is_published(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every alarm watches a documented metric that something in the stack publishes, or a
    metric a metric filter of the stack extracts from a log group the stack writes to."""
    endpoints = by_name(resources, ENDPOINT)
    clusters = by_name(resources, EKS_CLUSTER)
    observed = {
        a.inputs.get("clusterName")
        for a in of_type(resources, EKS_ADDON)
        if a.inputs.get("addonName") == OBSERVABILITY_ADDON
    }
    from_logs = _metrics_from_logs(resources, endpoints, observed)
    for alarm in of_type(resources, ALARM):
        namespace, metric = alarm.inputs.get("namespace"), alarm.inputs.get("metricName")
        dims: dict[str, str] = dict(alarm.inputs.get("dimensions") or {})
        if (str(namespace), str(metric), frozenset(dims)) in from_logs:
            continue
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


def _metrics_from_logs(
    resources: Sequence[Resource], endpoints: Mapping[Any, Resource], observed: set[Any]
) -> set[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension names) that a metric filter of the plan publishes from a
    log group something in the stack writes to: an endpoint's ``/aws/sagemaker/Endpoints/
    <name>`` ("Log Amazon SageMaker AI events with Amazon CloudWatch"), or a cluster's Container
    Insights ``/aws/containerinsights/<cluster>/application`` when the observability add-on
    ships its logs ("Send logs to CloudWatch Logs" with the add-on's Fluent Bit)."""
    written = {f"{SAGEMAKER_INSTANCE_NAMESPACE}/{name}" for name in endpoints}
    written |= {f"/aws/containerinsights/{cluster}/application" for cluster in observed}
    found = set()
    for f in of_type(resources, METRIC_FILTER):
        t = f.inputs.get("metricTransformation") or {}
        if f.inputs.get("logGroupName") in written:
            found.add(
                (
                    str(t.get("namespace")),
                    str(t.get("name")),
                    frozenset(t.get("dimensions") or {}),
                )
            )
    return found


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
            for v in variants(endpoint_config(resources, endpoint))
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
    for model in models_of(resources, endpoint):
        docs = role_documents(resources, model.inputs.get("executionRoleArn"))
        context = {"cloudwatch:namespace": SAGEMAKER_INSTANCE_NAMESPACE}
        if not iam_allows(docs, "cloudwatch:PutMetricData", "*", context):
            yield finding(
                "alarm_metric_is_published",
                alarm,
                f"execution role may not put metrics in {SAGEMAKER_INSTANCE_NAMESPACE}",
            )
