"""Documented Kubernetes and EKS rules: objects the API server accepts and the cluster ignores.

Every rule cites the page that states it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from infra.rules.base import Finding, Resource, dig, finding, of_type

EKS_ADDON = "aws:eks/addon:Addon"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


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
        values = addon.inputs.get("configurationValues") if addon is not None else None
        try:
            enabled = str(json.loads(values or "{}").get("enableNetworkPolicy")).lower() == "true"
        except (json.JSONDecodeError, TypeError, AttributeError):
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
