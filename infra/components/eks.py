"""EksCluster: the cluster, its roles, a managed node group, IRSA, add-ons, a k8s provider.

Secrets are envelope-encrypted with the stack's KMS key, every control-plane log type goes to
CloudWatch, the API endpoint is private unless CIDRs are listed, and access is managed with EKS
access entries (no aws-auth ConfigMap). Add-ons: vpc-cni with network policy enforcement,
metrics-server (the HPA's CPU metrics), amazon-cloudwatch-observability (Container Insights).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import policies

RESOURCE_TYPE = "mlship:eks:EksCluster"
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# Container Insights (the metrics the EKS alarms watch) comes from this add-on.
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"
# The Amazon VPC CNI enforces Kubernetes NetworkPolicies only when its add-on is configured so
# (Amazon EKS User Guide, "Limit Pod traffic with Kubernetes network policies": off by default).
VPC_CNI_ADDON = "vpc-cni"
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
# The HPA scales on CPU from the Metrics Server, which EKS does not deploy by default (Amazon EKS
# User Guide, "View resource usage with the Kubernetes Metrics Server").
METRICS_SERVER_ADDON = "metrics-server"
CLOUDWATCH_AGENT_POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"


def kubeconfig(*, cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that gets short-lived tokens from ``aws eks get-token`` (no static secret)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": "aws",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                            ],
                        }
                    },
                }
            ],
        }
    )


def _issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity]) -> str:
    oidcs = identities[0].oidcs if identities else None
    issuer = oidcs[0].issuer if oidcs else None
    if issuer is None:
        raise ValueError("the EKS cluster reported no OIDC issuer")
    return issuer


@dataclass(frozen=True)
class EksClusterArgs:
    """Inputs of :class:`EksCluster`.

    Attributes:
        cluster_name: EKS cluster name.
        region: AWS region.
        kubernetes_version: Kubernetes minor version, e.g. "1.33".
        subnet_ids: Private subnets for the control plane interfaces and nodes.
        key_arn: KMS key encrypting Kubernetes secrets.
        node_instance_type: EC2 type of the managed nodes.
        node_min_size: Node group minimum.
        node_max_size: Node group maximum.
        public_access_cidrs: CIDRs allowed to the public API endpoint (empty: private only).
        security_group_ids: Extra security groups for the control plane interfaces.
        tags: Tags on every taggable child.
    """

    cluster_name: str
    region: str
    kubernetes_version: str
    subnet_ids: Sequence[pulumi.Input[str]]
    key_arn: pulumi.Input[str]
    node_instance_type: str
    node_min_size: int
    node_max_size: int
    public_access_cidrs: Sequence[str] = ()
    security_group_ids: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)


class EksCluster(pulumi.ComponentResource):
    """Cluster, node group, OIDC provider for IRSA, observability add-on, k8s provider."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        cluster = self._create_cluster(name, args)
        # Before the nodes, so every pod starts under the network policy agent (a node that
        # joins first runs the self-managed CNI without it until the add-on replaces it).
        vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=cluster.name,
            addon_name=VPC_CNI_ADDON,
            configuration_values=json.dumps(VPC_CNI_CONFIGURATION),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=args.tags,
            opts=self._child,
        )
        nodes = self._create_nodes(name, args, cluster, depends_on=[vpc_cni])
        aws.eks.Addon(
            f"{name}-metrics-server",
            cluster_name=cluster.name,
            addon_name=METRICS_SERVER_ADDON,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        self.oidc_issuer = cluster.identities.apply(_issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=[policies.STS_AUDIENCE],
            tags=args.tags,
            opts=self._child,
        )
        aws.eks.Addon(
            f"{name}-observability",
            cluster_name=cluster.name,
            addon_name=OBSERVABILITY_ADDON,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority.data
            ).apply(
                lambda v: kubeconfig(
                    cluster_name=v[0], endpoint=v[1], ca_data=v[2], region=args.region
                )
            ),
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.oidc_provider_arn = oidc.arn
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
            }
        )

    def _create_cluster(self, name: str, args: EksClusterArgs) -> aws.eks.Cluster:
        role = aws.iam.Role(
            f"{name}-cluster-role",
            name=f"{args.cluster_name}-control-plane",
            assume_role_policy=policies.dumps(policies.eks_cluster_assume_role()),
            tags=args.tags,
            opts=self._child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=role.name,
            policy_arn=policies.EKS_CLUSTER_POLICY,
            opts=self._child,
        )
        key_policy = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=role.id,
            policy=pulumi.Output.from_input(args.key_arn).apply(
                lambda arn: policies.dumps(policies.eks_secrets_key_policy(key_arn=arn))
            ),
            opts=self._child,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            # EKS writes to this exact name; creating it first sets the retention.
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=90,
            tags=args.tags,
            opts=self._child,
        )
        public = bool(args.public_access_cidrs)
        return aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": list(args.security_group_ids),
                "endpoint_private_access": True,
                "endpoint_public_access": public,
                "public_access_cidrs": list(args.public_access_cidrs) if public else None,
            },
            encryption_config={"provider": {"key_arn": args.key_arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[attachment, key_policy, log_group]
            ),
        )

    def _create_nodes(
        self,
        name: str,
        args: EksClusterArgs,
        cluster: aws.eks.Cluster,
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        role = aws.iam.Role(
            f"{name}-node-role",
            name=f"{args.cluster_name}-nodes",
            assume_role_policy=policies.dumps(policies.service_assume_role("ec2.amazonaws.com")),
            tags=args.tags,
            opts=self._child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[-1]}",
                role=role.name,
                policy_arn=arn,
                opts=self._child,
            )
            for arn in (*policies.EKS_NODE_POLICIES, CLOUDWATCH_AGENT_POLICY)
        ]
        return aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            node_role_arn=role.arn,
            subnet_ids=list(args.subnet_ids),
            instance_types=[args.node_instance_type],
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config={
                "min_size": args.node_min_size,
                "desired_size": args.node_min_size,
                "max_size": args.node_max_size,
            },
            update_config={"max_unavailable": 1},
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, *depends_on]),
        )
