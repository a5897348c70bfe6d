"""KubernetesService: the model server on EKS, locked down.

Namespace (Pod Security "restricted"), an IRSA service account, a hardened Deployment, a
load-balanced Service, an HPA, a PodDisruptionBudget and a NetworkPolicy; their specs are the
pure functions of ``infra/manifests.py``. The deploy role gets edit rights in this namespace
only, through an EKS access entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import EnvVarArgsDict
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict

from infra import manifests, policies

RESOURCE_TYPE = "mlship:kubernetes:KubernetesService"


@dataclass(frozen=True)
class KubernetesServiceArgs:
    """Inputs of :class:`KubernetesService`.

    Attributes:
        app_name: Name of the namespace, service account, Deployment and Service.
        role_name: IAM name of the pods' IRSA role.
        region: AWS region (for the AWS SDK in the pods).
        account_id: AWS account id (for the API-keys secret ARN).
        cluster_name: EKS cluster.
        oidc_provider_arn: The cluster's IAM OIDC provider.
        oidc_issuer: The cluster's OIDC issuer URL.
        deploy_role_arn: CI's deploy role, granted edit rights in the namespace.
        image: Full image reference (repository URL and tag).
        bucket_name: Artifact bucket.
        bucket_arn: Its ARN.
        key_arn: Its KMS key.
        model_data_key: Key of ``model.tar.gz`` in the bucket.
        log_level: ``MLSHIP_LOG_LEVEL``.
        api_keys_secret: Secrets Manager secret name with API key hashes ("" for none).
        min_replicas: HPA minimum.
        max_replicas: HPA maximum.
        target_cpu_percent: HPA CPU utilisation target.
        cpu: CPU request and limit.
        memory: Memory request and limit.
        internal: Internal load balancer (VPC only) rather than internet-facing.
        certificate_arn: ACM certificate: the load balancer serves HTTPS on 443 ("" for
            plain HTTP on 80, internal only).
        tags: Tags on AWS children.
        argo_rollout: An Argo ``Rollout`` takes the Deployment over (``ArgoRollouts``): the
            HPA scales the Rollout.
        challenger_data_key: A model change: the challenger bundle's key ("" for none).
        flags_key: Key of the published flags document (with ``challenger_data_key``).
    """

    app_name: str
    role_name: str
    region: str
    account_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    deploy_role_arn: pulumi.Input[str]
    image: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    model_data_key: str
    log_level: str
    api_keys_secret: str
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    cpu: str
    memory: str
    internal: bool
    certificate_arn: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    argo_rollout: bool = False
    challenger_data_key: str = ""
    flags_key: str = ""


class KubernetesService(pulumi.ComponentResource):
    """The mlship model server as a hardened Kubernetes workload."""

    role_arn: pulumi.Output[str]
    service_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: KubernetesServiceArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._aws = pulumi.ResourceOptions(parent=self)
        self._k8s = pulumi.ResourceOptions(parent=self, provider=provider)
        self._labels = {"app.kubernetes.io/name": args.app_name}
        role = self._create_role(name, args)
        self._grant_deploy_role(name, args)
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.app_name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=self._k8s,
        )
        self._namespace = ns.metadata.name
        self._app = args.app_name
        meta = self._meta()
        k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=self._meta({"eks.amazonaws.com/role-arn": role.arn}),
            automount_service_account_token=False,
            opts=self._k8s,
        )
        deployment = self._create_deployment(name, args, meta)
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=self._meta(manifests.lb_annotations(args.internal, args.certificate_arn)),
            spec={
                "type": "LoadBalancer",
                "selector": self._labels,
                "ports": manifests.service_ports(args.certificate_arn),
            },
            opts=self._k8s,
        )
        self._create_scaling(name, args, meta, deployment)
        self._create_network_policy(name, meta)
        self.role_arn = role.arn
        tls = bool(args.certificate_arn)
        self.service_url = service.status.apply(lambda s: manifests.service_url(s, tls))
        self.register_outputs({"role_arn": self.role_arn, "service_url": self.service_url})

    def _meta(
        self, annotations: Mapping[str, pulumi.Input[str]] | None = None
    ) -> ObjectMetaArgsDict:
        meta: ObjectMetaArgsDict = {
            "name": self._app,
            "namespace": self._namespace,
            "labels": self._labels,
        }
        if annotations:
            meta["annotations"] = annotations
        return meta

    def _create_role(self, name: str, args: KubernetesServiceArgs) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-pod-role",
            name=args.role_name,
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
                lambda v: policies.dumps(
                    policies.irsa_assume_role(
                        provider_arn=v[0],
                        issuer_host=v[1].removeprefix("https://"),
                        namespace=args.app_name,
                        service_account=args.app_name,
                    )
                )
            ),
            tags=args.tags,
            opts=self._aws,
        )
        aws.iam.RolePolicy(
            f"{name}-pod-policy",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn, args.account_id).apply(
                lambda v: policies.dumps(
                    policies.service_pod_policy(
                        bucket_arn=v[0],
                        key_arn=v[1],
                        secret_arn=(
                            f"arn:aws:secretsmanager:{args.region}:{v[2]}:secret:"
                            f"{args.api_keys_secret}-??????"
                            if args.api_keys_secret
                            else None
                        ),
                    )
                )
            ),
            opts=self._aws,
        )
        return role

    def _grant_deploy_role(self, name: str, args: KubernetesServiceArgs) -> None:
        entry = aws.eks.AccessEntry(
            f"{name}-deploy-access",
            cluster_name=args.cluster_name,
            principal_arn=args.deploy_role_arn,
            type="STANDARD",
            tags=args.tags,
            opts=self._aws,
        )
        aws.eks.AccessPolicyAssociation(
            f"{name}-deploy-edit",
            cluster_name=args.cluster_name,
            principal_arn=entry.principal_arn,
            policy_arn=policies.EKS_EDIT_ACCESS_POLICY,
            access_scope={"type": "namespace", "namespaces": [args.app_name]},
            opts=self._aws,
        )

    def _create_deployment(
        self, name: str, args: KubernetesServiceArgs, meta: ObjectMetaArgsDict
    ) -> k8s.apps.v1.Deployment:
        bucket = pulumi.Output.from_input(args.bucket_name)
        env: pulumi.Output[Sequence[EnvVarArgsDict]] = bucket.apply(
            lambda b: manifests.env_vars(
                model_uri=f"s3://{b}/{args.model_data_key}",
                log_level=args.log_level,
                api_keys_secret=args.api_keys_secret,
                region=args.region,
                challenger_uri=(
                    f"s3://{b}/{args.challenger_data_key}" if args.challenger_data_key else ""
                ),
                flags_uri=f"s3://{b}/{args.flags_key}" if args.challenger_data_key else "",
            )
        )
        spec = manifests.deployment_spec(
            app_name=args.app_name,
            labels=self._labels,
            image=args.image,
            env=env,
            cpu=args.cpu,
            memory=args.memory,
        )
        return k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta, spec=spec, opts=self._k8s
        )

    def _create_scaling(
        self,
        name: str,
        args: KubernetesServiceArgs,
        meta: ObjectMetaArgsDict,
        deployment: k8s.apps.v1.Deployment,
    ) -> None:
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=meta,
            spec=manifests.hpa_spec(
                deployment_name=deployment.metadata.name,
                min_replicas=args.min_replicas,
                max_replicas=args.max_replicas,
                cpu_percent=args.target_cpu_percent,
                argo_rollout=args.argo_rollout,
            ),
            opts=self._k8s,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            spec={"max_unavailable": 1, "selector": {"match_labels": self._labels}},
            opts=self._k8s,
        )

    def _create_network_policy(self, name: str, meta: ObjectMetaArgsDict) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=meta,
            spec=manifests.network_policy_spec(self._labels),
            opts=self._k8s,
        )
