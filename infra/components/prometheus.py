"""The Prometheus rules run for real on EKS: Amazon Managed Service for Prometheus (AMP).

A workspace; AMP's managed scraper (agentless: AMP runs it, in the cluster's subnets) scraping
the pods that carry the ``prometheus.io/*`` annotations; the committed
``infra/prometheus/alerts.yml`` as the workspace's rule-groups namespace (the same file
``promtool test rules`` checks); and an alert manager definition sending every alert to the
stack's SNS topic. References: AMP user guide, "Using an AWS managed collector" (scrape
configuration, EKS access entry and the ``aps-collector-user`` RBAC), "Recording and alerting
rules" (rules files in Prometheus' format), "Alert manager" / "Send alerts to Amazon SNS"
(``sns_configs`` with ``sigv4``; the topic policy lets ``aps.amazonaws.com`` publish).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

RESOURCE_TYPE = "mlship:prometheus:ManagedPrometheus"
ALERTS_FILE = Path(__file__).resolve().parents[1] / "prometheus" / "alerts.yml"
# The Kubernetes user AMP's scraper role maps to (AMP user guide, managed collector set-up).
COLLECTOR_USER = "aps-collector-user"
SCRAPE_INTERVAL = "30s"


def scrape_configuration(cluster_name: str) -> dict[str, Any]:
    """A Prometheus configuration scraping the annotated pods, each series labelled with its
    ``namespace`` and ``pod`` (the labels alerts.yml groups by)."""
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "external_labels": {"cluster": cluster_name},
        },
        "scrape_configs": [
            {
                "job_name": "mlship-pods",
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                        "action": "keep",
                        "regex": "true",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                        "action": "replace",
                        "target_label": "__metrics_path__",
                        "regex": "(.+)",
                    },
                    {
                        "source_labels": [
                            "__address__",
                            "__meta_kubernetes_pod_annotation_prometheus_io_port",
                        ],
                        "action": "replace",
                        "regex": r"([^:]+)(?::\d+)?;(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_namespace"],
                        "target_label": "namespace",
                    },
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }


def alertmanager_definition(*, topic_arn: str, region: str) -> str:
    """AMP's alert manager definition: every alert to the SNS topic, grouped per alert."""
    config = {
        "route": {
            "receiver": "alert-topic",
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "alert-topic",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        "sigv4": {"region": region},
                        "subject": "mlship: {{ .CommonLabels.alertname }}",
                    }
                ],
            }
        ],
    }
    return yaml.safe_dump(
        {"alertmanager_config": yaml.safe_dump(config, sort_keys=False)}, sort_keys=False
    )


# What the scraper may read in the cluster (AMP user guide, managed collector RBAC).
COLLECTOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["nodes", "nodes/proxy", "nodes/metrics", "services", "endpoints", "pods"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {
        "apiGroups": ["extensions", "networking.k8s.io"],
        "resources": ["ingresses/status", "ingresses"],
        "verbs": ["get", "list", "watch"],
    },
    {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
]


@dataclass(frozen=True)
class ManagedPrometheusArgs:
    """Inputs of :class:`ManagedPrometheus`.

    Attributes:
        name_prefix: Prefix of the AWS names.
        region: AWS region (alert manager's SigV4 signing).
        cluster_name: The EKS cluster scraped.
        cluster_arn: Its ARN.
        subnet_ids: Subnets the scraper runs in (the cluster's).
        topic_arn: The stack's alert topic.
        tags: Tags on every taggable child.
    """

    name_prefix: str
    region: str
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


class ManagedPrometheus(pulumi.ComponentResource):
    """Workspace, managed scraper (with its cluster access), rules and alert manager."""

    workspace_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ManagedPrometheusArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        workspace = aws.amp.Workspace(
            f"{name}-workspace", alias=f"{args.name_prefix}-prometheus", tags=args.tags, opts=child
        )
        scraper = aws.amp.Scraper(
            f"{name}-scraper",
            alias=f"{args.name_prefix}-scraper",
            scrape_configuration=pulumi.Output.from_input(args.cluster_name).apply(
                lambda c: yaml.safe_dump(scrape_configuration(c), sort_keys=False)
            ),
            source=aws.amp.ScraperSourceArgs(
                eks=aws.amp.ScraperSourceEksArgs(
                    cluster_arn=args.cluster_arn, subnet_ids=list(args.subnet_ids)
                )
            ),
            destination=aws.amp.ScraperDestinationArgs(
                amp=aws.amp.ScraperDestinationAmpArgs(workspace_arn=workspace.arn)
            ),
            tags=args.tags,
            opts=child,
        )
        self._grant_cluster_access(name, args, scraper, provider)
        aws.amp.RuleGroupNamespace(
            f"{name}-rules",
            workspace_id=workspace.id,
            name=f"{args.name_prefix}-alerts",
            data=ALERTS_FILE.read_text(),
            tags=args.tags,
            opts=child,
        )
        aws.amp.AlertManagerDefinition(
            f"{name}-alertmanager",
            workspace_id=workspace.id,
            definition=pulumi.Output.from_input(args.topic_arn).apply(
                lambda arn: alertmanager_definition(topic_arn=arn, region=args.region)
            ),
            opts=child,
        )
        self.workspace_arn = workspace.arn
        self.register_outputs({"workspace_arn": self.workspace_arn})

    def _grant_cluster_access(
        self,
        name: str,
        args: ManagedPrometheusArgs,
        scraper: aws.amp.Scraper,
        provider: k8s.Provider,
    ) -> None:
        aws.eks.AccessEntry(
            f"{name}-scraper-access",
            cluster_name=args.cluster_name,
            principal_arn=scraper.role_arn,
            user_name=COLLECTOR_USER,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider)
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-collector-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="aps-collector-role"),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=r.get("apiGroups"),
                    resources=r.get("resources"),
                    non_resource_urls=r.get("nonResourceURLs"),
                    verbs=r["verbs"],
                )
                for r in COLLECTOR_RULES
            ],
            opts=k8s_opts,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-collector-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="aps-collector-user-role-binding"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="User", name=COLLECTOR_USER, api_group="rbac.authorization.k8s.io"
                )
            ],
            opts=k8s_opts,
        )
