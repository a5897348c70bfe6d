"""The Kubernetes objects of the model server, as pure specs (the component creates them).

Hardened by construction: non-root, read-only root filesystem, no privilege escalation, all
capabilities dropped, requests equal to limits, probes on ``/readyz`` and ``/healthz``,
Prometheus scrape annotations; the NetworkPolicy lets in only the service port and out only DNS
and HTTPS. Tests read these through the recorded plan and validate them for the cluster version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_kubernetes.apps.v1 import DeploymentSpecArgsDict
from pulumi_kubernetes.autoscaling.v2 import HorizontalPodAutoscalerSpecArgsDict
from pulumi_kubernetes.core.v1 import EnvVarArgsDict, ProbeArgsDict, ServicePortArgsDict
from pulumi_kubernetes.networking.v1 import NetworkPolicySpecArgsDict

from infra.naming import CONTAINER_PORT, METRICS_PORT

MODEL_CACHE_DIR = "/tmp/mlship"  # noqa: S108 - an emptyDir volume, not the shared host /tmp
RUN_AS = 10001

# Stopping a pod, Kubernetes removes it from the Service's endpoints and signals it at the same
# time ("Pod Lifecycle", termination of Pods), so for a few seconds after SIGTERM kube-proxy
# and the load balancer still send it new connections, which a server that closed its listener
# refuses. The preStop hook runs before SIGTERM is sent ("Container Lifecycle Hooks"): the pod
# keeps serving, new connections included, while the routes to it go away (Amazon EKS Best
# Practices, load balancing: graceful shutdown of pods); then the app drains.
PRESTOP_SLEEP_S = 10
# Seconds the app gives requests in progress after SIGTERM (MLSHIP_GRACEFUL_TIMEOUT).
DRAIN_S = 25
# The grace period counts from the start of the preStop hook, not from SIGTERM ("Container
# Lifecycle Hooks"): the sleep, the drain, and a few seconds to exit before SIGKILL.
TERMINATION_GRACE_S = PRESTOP_SLEEP_S + DRAIN_S + 5


def container_environment(
    *,
    model_uri: str,
    log_level: str,
    api_keys_secret: str,
    challenger_uri: str = "",
    flags_uri: str = "",
) -> dict[str, str]:
    """The container's ``MLSHIP_`` settings (names are ``AppSettings`` fields)."""
    env = {
        "MLSHIP_MODEL_URI": model_uri,
        "MLSHIP_LOG_LEVEL": log_level,
        "MLSHIP_PORT": str(CONTAINER_PORT),
        # /metrics (feature names, class shares, traffic) stays inside the cluster: the
        # Service, and so the load balancer, exposes only MLSHIP_PORT.
        "MLSHIP_METRICS_PORT": str(METRICS_PORT),
        "MLSHIP_MODEL_CACHE_DIR": MODEL_CACHE_DIR,
        "MLSHIP_GRACEFUL_TIMEOUT": str(DRAIN_S),  # within TERMINATION_GRACE_S
        # One server process per pod: the HPA scales pods, the CPU limit fits one process, and
        # each pod's /metrics then covers all of its traffic (Prometheus scrapes every pod).
        # The app's default (one worker per visible CPU) counts the node's CPUs, not the limit.
        "MLSHIP_WORKERS": "1",
    }
    if api_keys_secret:
        env["MLSHIP_API_KEYS_SECRET"] = api_keys_secret
    if challenger_uri:  # a model change in progress (infra/rollout_spec.py)
        env["MLSHIP_CHALLENGER_URI"] = challenger_uri
        env["MLSHIP_FLAGS_URI"] = flags_uri
    return env


def env_vars(
    *,
    model_uri: str,
    log_level: str,
    api_keys_secret: str,
    region: str,
    challenger_uri: str = "",
    flags_uri: str = "",
) -> Sequence[EnvVarArgsDict]:
    """The container's environment: its ``MLSHIP_`` settings and the AWS SDK's region."""
    settings = container_environment(
        model_uri=model_uri,
        log_level=log_level,
        api_keys_secret=api_keys_secret,
        challenger_uri=challenger_uri,
        flags_uri=flags_uri,
    )
    env = [EnvVarArgsDict(name=k, value=v) for k, v in settings.items()]
    return [*env, EnvVarArgsDict(name="AWS_DEFAULT_REGION", value=region)]


def health_probe(*, failures: int) -> ProbeArgsDict:
    """An HTTP probe on ``/healthz`` every 10 s, failing after ``failures`` misses."""
    return {
        "http_get": {"path": "/healthz", "port": "http"},
        "period_seconds": 10,
        "failure_threshold": failures,
    }


def deployment_spec(
    *,
    app_name: str,
    labels: Mapping[str, str],
    image: pulumi.Input[str],
    env: pulumi.Input[Sequence[EnvVarArgsDict]],
    cpu: str,
    memory: str,
) -> DeploymentSpecArgsDict:
    """The Deployment's spec: one hardened container, rolled one pod at a time.

    No ``replicas``: the HPA owns the count (Kubernetes, "Horizontal Pod Autoscaling": remove
    spec.replicas when an HPA is enabled, or every apply resets the count it chose). A new
    Deployment starts with one pod and the HPA raises it to its minimum.
    """
    resources = {"cpu": cpu, "memory": memory}
    return {
        "selector": {"match_labels": labels},
        "strategy": {
            "type": "RollingUpdate",
            "rolling_update": {"max_unavailable": 0, "max_surge": 1},
        },
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "service_account_name": app_name,
                "automount_service_account_token": False,
                "termination_grace_period_seconds": TERMINATION_GRACE_S,
                "security_context": {
                    "run_as_non_root": True,
                    "run_as_user": RUN_AS,
                    "run_as_group": RUN_AS,
                    "fs_group": RUN_AS,
                    "seccomp_profile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": app_name,
                        "image": image,
                        "ports": [
                            {"name": "http", "container_port": CONTAINER_PORT},
                            {"name": "metrics", "container_port": METRICS_PORT},
                        ],
                        "env": env,
                        "lifecycle": {"pre_stop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
                        "readiness_probe": {
                            "http_get": {"path": "/readyz", "port": "http"},
                            "period_seconds": 5,
                            "failure_threshold": 3,
                        },
                        "liveness_probe": health_probe(failures=3),
                        # Up to 5 minutes to download and load a large bundle.
                        "startup_probe": health_probe(failures=30),
                        "resources": {"requests": resources, "limits": resources},
                        "security_context": {
                            "allow_privilege_escalation": False,
                            "read_only_root_filesystem": True,
                            "run_as_non_root": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],  # noqa: S108
                    }
                ],
                "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "2Gi"}}],
            },
        },
    }


def hpa_spec(
    *,
    deployment_name: pulumi.Input[str],
    min_replicas: int,
    max_replicas: int,
    cpu_percent: int,
    argo_rollout: bool = False,
) -> HorizontalPodAutoscalerSpecArgsDict:
    """Scale the Deployment (or the Argo ``Rollout`` that took it over, of the same name)
    between the bounds on average CPU utilisation."""
    return {
        "scale_target_ref": {
            "api_version": "argoproj.io/v1alpha1" if argo_rollout else "apps/v1",
            "kind": "Rollout" if argo_rollout else "Deployment",
            "name": deployment_name,
        },
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "average_utilization": cpu_percent},
                },
            }
        ],
    }


def network_policy_spec(labels: Mapping[str, str]) -> NetworkPolicySpecArgsDict:
    """Only the service port in; only DNS and HTTPS (S3, STS, Secrets Manager) out."""
    return {
        "pod_selector": {"match_labels": labels},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [
            {
                "ports": [
                    {"protocol": "TCP", "port": CONTAINER_PORT},
                    {"protocol": "TCP", "port": METRICS_PORT},  # the in-cluster scrape
                ]
            }
        ],
        "egress": [
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"ports": [{"protocol": "TCP", "port": 443}]},
        ],
    }


# The NLB's TLS policy with a certificate: TLS 1.3 and 1.2 only (Elastic Load Balancing,
# "Security policies for your Network Load Balancer").
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def lb_annotations(internal: bool, certificate_arn: str = "") -> dict[str, str]:
    """Service annotations for an NLB, internal (VPC only) or internet-facing, terminating TLS
    on port 443 with ``certificate_arn`` when one is given (annotation names: AWS Load
    Balancer Controller, "Service annotations")."""
    prefix = "service.beta.kubernetes.io/aws-load-balancer"
    annotations = {
        f"{prefix}-type": "nlb",
        f"{prefix}-scheme": "internal" if internal else "internet-facing",
        f"{prefix}-internal": "true" if internal else "false",
    }
    if certificate_arn:
        annotations |= {
            f"{prefix}-ssl-cert": certificate_arn,
            f"{prefix}-ssl-ports": str(HTTPS_PORT),
            f"{prefix}-ssl-negotiation-policy": TLS_POLICY,
        }
    return annotations


HTTPS_PORT = 443


def service_ports(certificate_arn: str) -> list[ServicePortArgsDict]:
    """The Service's one port: 443 (TLS ends at the load balancer) with a certificate, else
    80; both reach the pods' ``http`` port."""
    if certificate_arn:
        return [{"name": "https", "port": HTTPS_PORT, "target_port": "http"}]
    return [{"name": "http", "port": 80, "target_port": "http"}]


def service_url(status: object, tls: bool = False) -> str:
    """``http(s)://<load balancer hostname>`` once AWS has assigned one."""
    ingress = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    host = getattr(ingress[0], "hostname", None) if ingress else None
    return f"{'https' if tls else 'http'}://{host}" if host else ""
