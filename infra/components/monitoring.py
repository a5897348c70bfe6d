"""Monitoring: an encrypted SNS alert topic, CloudWatch alarms with actions, a dashboard.

SageMaker target: ``AWS/SageMaker`` invocation metrics (ModelLatency p99, 5XX and 4XX errors)
and ``/aws/sagemaker/Endpoints`` instance metrics (CPU, memory), all with the dimensions
``EndpointName`` and ``VariantName``. ModelLatency is reported in microseconds, so the
millisecond threshold is converted. The latency and 5XX alarms also drive the endpoint's
auto-rollback. EKS target: Container Insights pod and service metrics (the
``amazon-cloudwatch-observability`` add-on publishes them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.config import Alarms

RESOURCE_TYPE = "mlship:monitoring:Monitoring"
SAGEMAKER_NAMESPACE = "AWS/SageMaker"
SAGEMAKER_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
CONTAINER_INSIGHTS_NAMESPACE = "ContainerInsights"
PERIOD_SECONDS = 60


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm, before it becomes a resource (tests check these directly)."""

    role: str
    metric_name: str
    namespace: str
    dimensions: Mapping[str, str]
    threshold: float
    description: str
    statistic: str | None = None
    extended_statistic: str | None = None
    comparison: str = "GreaterThanThreshold"
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3
    treat_missing_data: str = "notBreaching"
    rollback: bool = False


def sagemaker_alarm_specs(
    *, endpoint_name: str, variant_name: str, alarms: Alarms, serverless: bool
) -> list[AlarmSpec]:
    """Alarms for a SageMaker endpoint variant (CPU/memory only on instance endpoints)."""
    dims = {"EndpointName": endpoint_name, "VariantName": variant_name}
    specs = [
        AlarmSpec(
            "latency-p99",
            "ModelLatency",
            SAGEMAKER_NAMESPACE,
            dims,
            threshold=alarms.latency_p99_ms * 1000,  # ModelLatency is in microseconds
            extended_statistic="p99",
            description=f"p99 model latency above {alarms.latency_p99_ms} ms",
            rollback=True,
        ),
        AlarmSpec(
            "errors-5xx",
            "Invocation5XXErrors",
            SAGEMAKER_NAMESPACE,
            dims,
            threshold=alarms.errors_5xx,
            statistic="Sum",
            description=f"more than {alarms.errors_5xx} 5XX responses a minute",
            evaluation_periods=3,
            datapoints_to_alarm=2,
            rollback=True,
        ),
        AlarmSpec(
            "errors-4xx",
            "Invocation4XXErrors",
            SAGEMAKER_NAMESPACE,
            dims,
            threshold=alarms.errors_4xx,
            statistic="Sum",
            description=f"more than {alarms.errors_4xx} 4XX responses a minute",
        ),
    ]
    if not serverless:
        specs += [
            AlarmSpec(
                "cpu",
                "CPUUtilization",
                SAGEMAKER_INSTANCE_NAMESPACE,
                dims,
                threshold=alarms.cpu_percent,
                statistic="Average",
                description=f"CPU above {alarms.cpu_percent}% (100% per vCPU)",
            ),
            AlarmSpec(
                "memory",
                "MemoryUtilization",
                SAGEMAKER_INSTANCE_NAMESPACE,
                dims,
                threshold=alarms.memory_percent,
                statistic="Average",
                description=f"memory above {alarms.memory_percent}%",
            ),
        ]
    return specs


def eks_alarm_specs(
    *, cluster_name: str, namespace: str, workload: str, alarms: Alarms, min_pods: int
) -> list[AlarmSpec]:
    """Container Insights alarms for the Kubernetes service."""
    pod = {"ClusterName": cluster_name, "Namespace": namespace, "PodName": workload}
    return [
        AlarmSpec(
            "cpu",
            "pod_cpu_utilization",
            CONTAINER_INSIGHTS_NAMESPACE,
            pod,
            threshold=alarms.cpu_percent,
            statistic="Average",
            description=f"pod CPU above {alarms.cpu_percent}% of the node",
        ),
        AlarmSpec(
            "memory",
            "pod_memory_utilization",
            CONTAINER_INSIGHTS_NAMESPACE,
            pod,
            threshold=alarms.memory_percent,
            statistic="Average",
            description=f"pod memory above {alarms.memory_percent}% of the node",
        ),
        AlarmSpec(
            "restarts",
            "pod_number_of_container_restarts",
            CONTAINER_INSIGHTS_NAMESPACE,
            pod,
            threshold=0,
            statistic="Sum",
            description="containers restarting (crash loop or failed probes)",
            evaluation_periods=3,
            datapoints_to_alarm=2,
        ),
        AlarmSpec(
            "running-pods",
            "service_number_of_running_pods",
            CONTAINER_INSIGHTS_NAMESPACE,
            {"ClusterName": cluster_name, "Namespace": namespace, "Service": workload},
            threshold=min_pods,
            statistic="Minimum",
            comparison="LessThanThreshold",
            description=f"fewer than {min_pods} running pods",
            treat_missing_data="breaching",
        ),
    ]


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`.

    Attributes:
        name_prefix: Prefix of the topic, alarm and dashboard names.
        account_id: AWS account id (topic and key policies).
        region: AWS region (dashboard).
        specs: The alarms to create.
        emails: Addresses subscribed to the topic.
        target: What is watched, for the dashboard title.
        tags: Tags on every taggable child.
        extra_widgets: Dashboard widgets placed after the alarm graphs (their ``y`` is offset
            below them), e.g. the model signals per feature.
        publishers: AWS services besides CloudWatch that publish to the topic (EventBridge
            rules, the Prometheus alert manager): the topic policy and its key let them.
    """

    name_prefix: str
    account_id: pulumi.Input[str]
    region: str
    specs: Sequence[AlarmSpec]
    emails: Sequence[str]
    target: Literal["sagemaker", "eks"]
    tags: dict[str, str] = field(default_factory=dict)
    publishers: Sequence[str] = ()
    extra_widgets: Sequence[Mapping[str, Any]] = ()


class Monitoring(pulumi.ComponentResource):
    """Alert topic (KMS), subscriptions, alarms (actions enabled) and a dashboard."""

    topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    rollback_alarm_names: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        topic = self._create_topic(name, args)
        self.rollback_alarm_names = []
        for spec in args.specs:
            alarm = aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.role}",
                name=f"{args.name_prefix}-{spec.role}",
                alarm_description=f"mlship {args.name_prefix}: {spec.description}",
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                dimensions=dict(spec.dimensions),
                statistic=spec.statistic,
                extended_statistic=spec.extended_statistic,
                period=PERIOD_SECONDS,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                treat_missing_data=spec.treat_missing_data,
                actions_enabled=True,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=args.tags,
                opts=self._child,
            )
            if spec.rollback:
                self.rollback_alarm_names.append(alarm.name)
        dashboard_name = f"{args.name_prefix}-{args.target}"
        aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=dashboard_name,
            dashboard_body=json.dumps(
                dashboard_body(args.specs, args.region, dashboard_name, args.extra_widgets)
            ),
            opts=self._child,
        )
        self.topic_arn = topic.arn
        self.dashboard_url = pulumi.Output.from_input(
            f"https://{args.region}.console.aws.amazon.com/cloudwatch/home"
            f"?region={args.region}#dashboards:name={dashboard_name}"
        )
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "dashboard_url": self.dashboard_url,
                "rollback_alarm_names": self.rollback_alarm_names,
            }
        )

    def _create_topic(self, name: str, args: MonitoringArgs) -> aws.sns.Topic:
        # CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key, so the
        # topic gets its own key whose policy lets CloudWatch (of this account) use it.
        key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.name_prefix} alert topic",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.dumps(
                    policies.key_policy(
                        account_id=account,
                        service_principals=sorted({"cloudwatch.amazonaws.com", *args.publishers}),
                    )
                )
            ),
            tags=args.tags,
            opts=self._child,
        )
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=f"{args.name_prefix}-alerts",
            kms_master_key_id=key.arn,
            tags=args.tags,
            opts=self._child,
        )
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, args.account_id).apply(
                lambda v: policies.dumps(
                    policies.alarm_topic_policy(
                        topic_arn=v[0], account_id=v[1], publishers=args.publishers
                    )
                )
            ),
            opts=self._child,
        )
        for email in args.emails:
            # The address, not a list index, names the subscription: reordering replaces nothing.
            slug = "".join(c if c.isalnum() else "-" for c in email.lower())
            aws.sns.TopicSubscription(
                f"{name}-email-{slug}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=self._child,
            )
        return topic


def dashboard_body(
    specs: Sequence[AlarmSpec],
    region: str,
    title: str,
    extra_widgets: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A CloudWatch dashboard: one graph per alarmed metric, with its threshold line; then
    ``extra_widgets``."""
    widgets: list[dict[str, Any]] = [
        {
            "type": "text",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 2,
            "properties": {"markdown": f"# {title}\nAlarms notify the alert topic."},
        }
    ]
    for i, spec in enumerate(specs):
        metric: list[Any] = [spec.namespace, spec.metric_name]
        for dim, value in spec.dimensions.items():
            metric += [dim, value]
        stat = spec.extended_statistic or spec.statistic or "Average"
        widgets.append(
            {
                "type": "metric",
                "x": (i % 2) * 12,
                "y": 2 + (i // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": spec.description,
                    "region": region,
                    "metrics": [metric],
                    "stat": stat,
                    "period": PERIOD_SECONDS,
                    "view": "timeSeries",
                    "annotations": {"horizontal": [{"value": spec.threshold, "label": "alarm"}]},
                },
            }
        )
    below = 2 + ((len(specs) + 1) // 2) * 6
    widgets += [{**w, "y": below + int(w.get("y", 0))} for w in extra_widgets]
    return {"widgets": widgets}
