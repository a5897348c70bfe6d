"""The EKS target: cluster hardening, IRSA, and Kubernetes objects valid for the target version."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from infra import rules
from infra.config.eks import SUPPORTED_KUBERNETES
from infra.mocks import Recorded
from infra.plan import StackPlan
from tests.infra.conftest import CERTIFICATE_ARN

K8S_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    # The managed Prometheus scraper's read-only access (tests/infra/test_prometheus.py).
    "ClusterRole",
    "ClusterRoleBinding",
}


def one(plan: StackPlan, type_: str) -> Recorded:
    (found,) = plan.of_type(type_)
    return found


def k8s_objects(plan: StackPlan) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.resources if r.type.startswith("kubernetes:") and r.custom]


@pytest.mark.parametrize("fixture", ["plans", "byo_vpc_plan"])
def test_kubernetes_objects_validate_strictly_for_the_cluster_version(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    value = request.getfixturevalue(fixture)
    plan: StackPlan = value["eks"] if isinstance(value, dict) else value
    objects = k8s_objects(plan)
    assert {o["kind"] for o in objects} == K8S_KINDS
    version = plan.config.eks.kubernetes_version
    for obj in objects:
        # Raises ValidationError (unknown fields in strict mode, wrong types, missing fields).
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field(plans: dict[str, StackPlan]) -> None:
    deployment = json.loads(json.dumps(one(plans["eks"], "kubernetes:apps/v1:Deployment").inputs))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


def test_deployment_is_hardened_probed_and_scraped(plans: dict[str, StackPlan]) -> None:
    deployment = one(plans["eks"], "kubernetes:apps/v1:Deployment").inputs
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] == container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    bucket = plans["eks"].outputs["bucketName"]
    assert env["MLSHIP_MODEL_URI"] == f"s3://{bucket}/models/current/model.tar.gz"
    assert env["MLSHIP_MODEL_CACHE_DIR"].startswith("/tmp/")
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    annotations = template["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    # scraped on the metrics port, which the app serves /metrics on (and only there)
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert env["MLSHIP_METRICS_PORT"] == str(ports["metrics"])
    assert env["MLSHIP_PORT"] == str(ports["http"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_a_stopping_pod_serves_until_its_routes_are_gone_then_drains_within_its_grace(
    plans: dict[str, StackPlan],
) -> None:
    """Kubernetes removes a stopping pod from the Service's endpoints while it signals it
    ("Pod Lifecycle", termination of Pods), so new connections keep arriving for a few seconds:
    a preStop sleep delays SIGTERM meanwhile (Amazon EKS Best Practices, load balancing:
    graceful shutdown). "Container Lifecycle Hooks": the grace period counts from the start of
    the preStop hook, so it must hold the sleep and the app's drain (MLSHIP_GRACEFUL_TIMEOUT),
    or the kubelet kills requests still draining."""
    pod = one(plans["eks"], "kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int({e["name"]: e["value"] for e in container["env"]}["MLSHIP_GRACEFUL_TIMEOUT"])
    assert sleep >= 5  # kube-proxy and the load balancer take seconds to stop routing
    assert pod["terminationGracePeriodSeconds"] > sleep + drain


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
def test_the_deployment_validates_for_every_supported_cluster_version(
    plans: dict[str, StackPlan], version: str
) -> None:
    # The preStop sleep action is in the API from 1.29 (beta, on by default, from 1.30; KEP-3960).
    deployment = one(plans["eks"], "kubernetes:apps/v1:Deployment").inputs
    kubernetes_validate.validate(deployment, version, strict=True)


def test_namespace_enforces_restricted_pod_security(plans: dict[str, StackPlan]) -> None:
    ns = one(plans["eks"], "kubernetes:core/v1:Namespace").inputs
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy_and_autoscaling(plans: dict[str, StackPlan]) -> None:
    plan = plans["eks"]
    netpol = one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert netpol["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9090}]
    assert netpol["ingress"] == [{"ports": ingress_ports}]
    egress_ports = {p["port"] for rule in netpol["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443}
    hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    pdb = one(plan, "kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    service = one(plan, "kubernetes:core/v1:Service").inputs
    assert (
        service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"]
        == "internal"
    )


def test_internal_service_plain_http_on_80(plans: dict[str, StackPlan]) -> None:
    """The Service exposes the app's port only: not the metrics port."""
    service = one(plans["eks"], "kubernetes:core/v1:Service").inputs
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert not any("ssl" in a for a in service["metadata"]["annotations"])


def test_internet_facing_service_terminates_tls_on_443(byo_vpc_plan: StackPlan) -> None:
    """Annotation names and values: AWS Load Balancer Controller, "Service annotations"
    (ssl-cert: the ACM ARN; ssl-ports: the TLS listener ports); the policy is one of the NLB's
    documented TLS policies (Elastic Load Balancing, "Security policies for your Network Load
    Balancer")."""
    service = one(byo_vpc_plan, "kubernetes:core/v1:Service").inputs
    annotations = service["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer"
    assert annotations[f"{prefix}-scheme"] == "internet-facing"
    assert annotations[f"{prefix}-ssl-cert"] == CERTIFICATE_ARN
    assert annotations[f"{prefix}-ssl-ports"] == "443"
    assert annotations[f"{prefix}-ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "http"}]


def test_kubernetes_resources_use_the_cluster_provider(plans: dict[str, StackPlan]) -> None:
    plan = plans["eks"]
    provider = one(plan, "pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "aws"
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")
    workloads = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    # Every object of the service, none left to the ambient kubeconfig's cluster.
    assert {r.inputs["kind"] for r in workloads} == K8S_KINDS
    assert len(workloads) == len(K8S_KINDS)
    outside = [r.name for r in workloads if not r.provider.startswith(f"{provider.urn}::")]
    assert outside == []


def test_cluster_is_private_encrypted_and_logged(plans: dict[str, StackPlan]) -> None:
    cluster = one(plans["eks"], rules.EKS_CLUSTER).inputs
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:")
    assert set(cluster["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert len(cluster["vpcConfig"]["subnetIds"]) == 2
    nodes = one(plans["eks"], "aws:eks/nodeGroup:NodeGroup").inputs
    assert nodes["instanceTypes"] == ["t3.large"]
    assert nodes["subnetIds"] == cluster["vpcConfig"]["subnetIds"]


def test_public_endpoint_is_limited_to_listed_cidrs(byo_vpc_plan: StackPlan) -> None:
    assert byo_vpc_plan.findings == []
    cluster = one(byo_vpc_plan, rules.EKS_CLUSTER).inputs
    assert cluster["vpcConfig"]["endpointPublicAccess"] is True
    assert cluster["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["vpcConfig"]["subnetIds"] == [
        "subnet-0123456789abcdef0",
        "subnet-0fedcba9876543210",
    ]
    assert byo_vpc_plan.of_type("aws:ec2/vpc:Vpc") == []


def test_pod_role_trusts_one_service_account(byo_vpc_plan: StackPlan) -> None:
    role = next(
        r for r in byo_vpc_plan.of_type(rules.ROLE) if r.inputs["name"] == "mlship-eks-pods"
    )
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    equals = statement["Condition"]["StringEquals"]
    issuer = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    assert equals[f"{issuer}:sub"] == "system:serviceaccount:mlship:mlship"
    assert equals[f"{issuer}:aud"] == "sts.amazonaws.com"
    sa = one(byo_vpc_plan, "kubernetes:core/v1:ServiceAccount").inputs
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/mlship-eks-pods"
    )
    pod_policy = next(
        r for r in byo_vpc_plan.of_type(rules.ROLE_POLICY) if r.name.endswith("pod-policy")
    )
    resources = [s["Resource"] for s in json.loads(pod_policy.inputs["policy"])["Statement"]]
    assert resources[-1] == (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlship-api-keys-??????"
    )


def test_deploy_role_may_edit_only_the_service_namespace(plans: dict[str, StackPlan]) -> None:
    plan = plans["eks"]
    association = one(plan, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation").inputs
    assert association["accessScope"] == {"type": "namespace", "namespaces": ["mlship"]}
    assert association["policyArn"].endswith("cluster-access-policy/AmazonEKSEditPolicy")
    assert association["principalArn"] == plan.outputs["deployRoleArn"]


def test_eks_alarms_watch_container_insights(plans: dict[str, StackPlan]) -> None:
    # The service's alarms (the model-signal alarms: tests/infra/test_signals.py).
    alarms = [
        a
        for a in plans["eks"].of_type(rules.ALARM)
        if a.inputs["namespace"] != "mlship-eks/ModelSignals"
    ]
    assert {a.inputs["namespace"] for a in alarms} == {"ContainerInsights"}
    for a in alarms:
        dims = a.inputs["dimensions"]
        assert dims["ClusterName"] == "mlship-eks-cluster"
        assert dims["Namespace"] == "mlship"
        assert a.inputs["actionsEnabled"] is True
    addons = {a.inputs["addonName"] for a in plans["eks"].of_type("aws:eks/addon:Addon")}
    assert "amazon-cloudwatch-observability" in addons


def test_cluster_add_ons_enforce_network_policy_and_serve_resource_metrics(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["eks"]
    addons = {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "metrics-server", "amazon-cloudwatch-observability"}
    # Amazon EKS User Guide, "Limit Pod traffic with Kubernetes network policies".
    assert json.loads(addons["vpc-cni"].inputs["configurationValues"]) == {
        "enableNetworkPolicy": "true"
    }
    cluster = one(plan, rules.EKS_CLUSTER).inputs["name"]
    assert {a.inputs["clusterName"] for a in addons.values()} == {cluster}


def test_hpa_owns_the_replica_count(plans: dict[str, StackPlan]) -> None:
    """Kubernetes HPA docs: a Deployment an HPA scales leaves spec.replicas out."""
    plan = plans["eks"]
    deployment = one(plan, "kubernetes:apps/v1:Deployment").inputs
    hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]
