"""ArgoRollouts: canary image rollouts on EKS with automatic rollback on the stack's alarms.

Argo Rollouts (installed here from its Helm chart, pinned) runs a ``Rollout`` that takes over the
service's Deployment through ``workloadRef`` (the Deployment stays the one pod template, so its
validation and rules are unchanged; Argo scales it down progressively) and shifts pods in the
configured steps. In the background an ``AnalysisTemplate`` queries the same CloudWatch metrics
and thresholds as the stack's alarms (``infra/rollout_spec.analysis_template``); a breach aborts
the rollout and returns every pod to the stable version. The controller reads CloudWatch through
its own IRSA role, allowed ``cloudwatch:GetMetricData`` only.

Without a traffic router Argo's weights are pod ratios: with N pods a step of p % runs
ceil(N * p / 100) canary pods, so the first step exposes at least one pod whatever N is; the
analysis guards every step at any pod count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import policies
from infra.rollout_spec import analysis_template, argo_rollout

RESOURCE_TYPE = "mlship:argo_rollouts:ArgoRollouts"
# argo-helm's argo-rollouts chart 2.40.5 is Argo Rollouts v1.8.3 (workloadRef.scaleDown,
# CloudWatch analysis). Bump deliberately: the CRDs come with the chart.
CHART = "argo-rollouts"
CHART_VERSION = "2.40.5"
CHART_REPO = "https://argoproj.github.io/argo-helm"
CONTROLLER_NAMESPACE = "argo-rollouts"
CONTROLLER_SERVICE_ACCOUNT = "argo-rollouts"


@dataclass(frozen=True)
class ArgoRolloutsArgs:
    """Inputs of :class:`ArgoRollouts`.

    Attributes:
        app_name: The service's namespace and Deployment (``KubernetesService``).
        labels: The Deployment's pod labels (the Rollout's selector).
        steps: Canary weights, %.
        bake_seconds: Pause after each step (the analysis keeps running).
        alarms: The stack's alarm specs (``monitoring.eks_alarm_specs``).
        role_name: IAM name of the controller's IRSA role.
        region: AWS region (CloudWatch).
        oidc_provider_arn: The cluster's IAM OIDC provider.
        oidc_issuer: The cluster's OIDC issuer URL.
        tags: Tags on AWS children.
    """

    app_name: str
    labels: dict[str, str]
    steps: Sequence[int]
    bake_seconds: int
    alarms: Sequence[Any]
    role_name: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


class ArgoRollouts(pulumi.ComponentResource):
    """The Argo Rollouts controller, the analysis on the alarms, and the service's Rollout."""

    rollout_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ArgoRolloutsArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider)
        role = self._create_role(name, args)
        release = k8s.helm.v3.Release(
            f"{name}-controller",
            chart=CHART,
            version=CHART_VERSION,
            repository_opts={"repo": CHART_REPO},
            namespace=CONTROLLER_NAMESPACE,
            create_namespace=True,
            values={
                "installCRDs": True,
                "serviceAccount": {
                    "name": CONTROLLER_SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                },
                "controller": {
                    "replicas": 2,
                    "extraEnv": [{"name": "AWS_REGION", "value": args.region}],
                },
            },
            opts=k8s_opts,
        )
        after = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[release])
        template = analysis_template(f"{args.app_name}-alarms", args.app_name, args.alarms)
        k8s.apiextensions.CustomResource(
            f"{name}-analysis",
            api_version=template["apiVersion"],
            kind=template["kind"],
            metadata=template["metadata"],
            spec=template["spec"],
            opts=after,
        )
        manifest = argo_rollout(
            args.app_name,
            args.app_name,
            args.app_name,
            args.labels,
            args.steps,
            args.bake_seconds,
            template["metadata"]["name"],
        )
        rollout = k8s.apiextensions.CustomResource(
            f"{name}-rollout",
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=after,
        )
        self.rollout_name = rollout.id.apply(lambda _: args.app_name)
        self.register_outputs({"rollout_name": self.rollout_name})

    def _create_role(self, name: str, args: ArgoRolloutsArgs) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-controller-role",
            name=args.role_name,
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
                lambda v: policies.dumps(
                    policies.irsa_assume_role(
                        provider_arn=v[0],
                        issuer_host=v[1].removeprefix("https://"),
                        namespace=CONTROLLER_NAMESPACE,
                        service_account=CONTROLLER_SERVICE_ACCOUNT,
                    )
                )
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-controller-policy",
            role=role.id,
            # GetMetricData has no resource-level permissions: "*" is the only resource.
            policy=policies.dumps(
                policies.document(
                    policies.allow("ReadAnalysisMetrics", ["cloudwatch:GetMetricData"], "*")
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role
