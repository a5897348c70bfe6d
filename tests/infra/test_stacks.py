"""Every committed stack runs offline; the recorded inputs carry the security properties."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from app.settings import AppSettings
from infra import manifests as k8s_component
from infra import rules
from infra.__main__ import OUTPUTS
from infra.components import sagemaker as sm_component
from infra.mocks import Recorded
from infra.naming import VARIANT_NAME
from infra.plan import StackPlan

ARN = re.compile(r"^arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+$")
SAGEMAKER_INSTANCE = re.compile(r"^ml\.[a-z][a-z0-9]*\.(\d*x?large|medium)$")
SECURITY_RESOURCE_TYPES = {
    rules.BUCKET,
    rules.KMS_KEY,
    rules.ECR_REPOSITORY,
}


def one(plan: StackPlan, type_: str) -> Recorded:
    found = plan.of_type(type_)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def policy(r: Recorded, key: str = "policy") -> dict[str, Any]:
    doc = json.loads(r.inputs[key])
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("stack", ["dev", "prod", "eks"])
def test_stack_plans_with_no_policy_violations(plans: dict[str, StackPlan], stack: str) -> None:
    plan = plans[stack]
    assert plan.findings == []
    assert plan.counts()["aws"] >= 25
    assert set(plan.outputs) <= set(OUTPUTS)
    for name in ("bucketName", "repositoryUrl", "deployRoleArn", "dashboardUrl"):
        assert plan.outputs[name], name


@pytest.mark.parametrize("stack", ["dev", "prod", "eks"])
def test_data_areas_of_the_bucket_are_stack_outputs(
    plans: dict[str, StackPlan], stack: str
) -> None:
    outputs = plans[stack].outputs
    bucket = outputs["bucketName"]
    assert outputs["dvcRemoteUri"] == f"s3://{bucket}/dvc"
    assert outputs["trainingDataUri"] == f"s3://{bucket}/data"
    assert outputs["stagingUri"] == f"s3://{bucket}/staging"


def test_child_names_derive_from_their_component(plans: dict[str, StackPlan]) -> None:
    for plan in plans.values():
        by_urn = {r.urn: r for r in plan.resources}
        for r in plan.resources:
            parent = by_urn.get(r.parent)
            if parent is not None:
                assert r.name.startswith(f"{parent.name}-"), (parent.name, r.name)
        components = {r.type for r in plan.resources if not r.custom}
        assert all(re.match(r"^mlship:[a-z_]+:[A-Z][A-Za-z]+$", t) for t in components)


def test_artifact_bucket_is_encrypted_with_the_stack_key(plans: dict[str, StackPlan]) -> None:
    plan = plans["dev"]
    sse = one(plan, rules.BUCKET_SSE).inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert re.match(
        r"^arn:aws:kms:eu-west-1:\d{12}:key/[0-9a-f-]{36}$",
        sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"],
    )
    assert sse["bucketKeyEnabled"] is True
    lifecycle = one(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert lifecycle.inputs["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    ownership = one(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    keys = plan.of_type(rules.KMS_KEY)
    # The artifact key (bucket, ECR, captures) and the alert topic's key.
    assert sorted(k.name for k in keys) == [
        "mlship-dev-artifacts-key",
        "mlship-dev-monitoring-key",
    ]
    assert [k.inputs["enableKeyRotation"] for k in keys] == [True, True]


def test_production_protects_stateful_resources(plans: dict[str, StackPlan]) -> None:
    for stack, expected in (("prod", True), ("dev", False)):
        plan = plans[stack]
        stateful = [r for r in plan.resources if r.type in SECURITY_RESOURCE_TYPES]
        artifacts = [r for r in stateful if "-artifacts-" in r.name or "-images-" in r.name]
        assert len(artifacts) == 3
        assert all(r.protect is expected for r in artifacts), stack


def test_ecr_repository_is_immutable_scanned_and_kms_encrypted(
    plans: dict[str, StackPlan],
) -> None:
    repo = one(plans["prod"], rules.ECR_REPOSITORY).inputs
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["encryptionConfigurations"][0]["encryptionType"] == "KMS"
    assert ARN.match(repo["encryptionConfigurations"][0]["kmsKey"])
    lifecycle = json.loads(
        one(plans["prod"], "aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"]
    )
    assert [r["rulePriority"] for r in lifecycle["rules"]] == [1, 2]


def test_sagemaker_model_runs_our_image_and_bundle(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    # The endpoint's model (prod also has the scheduled batch scoring's, tests/infra/test_batch).
    (model,) = [
        r.inputs for r in plan.of_type("aws:sagemaker/model:Model") if "-sagemaker-" in r.name
    ]
    container = model["primaryContainer"]
    assert re.match(
        r"^\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com/mlship-prod:0\.1\.0$", container["image"]
    )
    bucket = plan.outputs["bucketName"]
    assert container["modelDataUrl"] == f"s3://{bucket}/models/current/model.tar.gz"
    assert model["enableNetworkIsolation"] is True
    assert container["environment"]["MLSHIP_MODEL_URI"] == "/opt/ml/model"


def test_container_env_names_are_app_settings_fields(plans: dict[str, StackPlan]) -> None:
    fields = {f"MLSHIP_{name.upper()}" for name in AppSettings.model_fields}
    sagemaker_env = set(sm_component.container_environment(log_level="INFO"))
    k8s_env = set(
        k8s_component.container_environment(
            model_uri="s3://b/models/m/model.tar.gz", log_level="INFO", api_keys_secret="s"
        )
    )
    assert sagemaker_env | k8s_env <= fields
    recorded = set(
        one(plans["dev"], "aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
    )
    deployment = one(plans["eks"], "kubernetes:apps/v1:Deployment").inputs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    k8s_recorded = {e["name"] for e in container["env"]}
    assert recorded <= fields
    assert {n for n in k8s_recorded if n.startswith("MLSHIP_")} <= fields
    assert k8s_recorded - fields == {"AWS_DEFAULT_REGION"}
    # One process per pod, so that a scrape of the pod sees all of its requests.
    assert {"name": "MLSHIP_WORKERS", "value": "1"} in container["env"]
    levels = AppSettings.model_fields["log_level"].annotation
    assert "DEBUG" in str(levels)


def test_prod_endpoint_rolls_out_by_canary_with_auto_rollback(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["prod"]
    endpoint = one(plan, rules.ENDPOINT).inputs
    assert endpoint["name"] == "mlship-prod-endpoint"
    dc = endpoint["deploymentConfig"]
    bg = dc["blueGreenUpdatePolicy"]
    routing = bg["trafficRoutingConfiguration"]
    assert routing["type"] == "CANARY"
    assert routing["canarySize"] == {"type": "CAPACITY_PERCENT", "value": 50}
    assert 0 <= routing["waitIntervalInSeconds"] <= 3600
    assert 600 <= bg["maximumExecutionTimeoutInSeconds"] <= 14400  # the provider's range
    assert bg["maximumExecutionTimeoutInSeconds"] > (
        routing["waitIntervalInSeconds"] + bg["terminationWaitInSeconds"]
    )
    alarm_names = {a.inputs["name"] for a in plan.of_type(rules.ALARM)}
    rollback = {a["alarmName"] for a in dc["autoRollbackConfiguration"]["alarms"]}
    assert rollback == {"mlship-prod-latency-p99", "mlship-prod-errors-5xx"}
    assert rollback <= alarm_names


def test_prod_endpoint_config_captures_everything_encrypted(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    config = one(plan, rules.ENDPOINT_CONFIG).inputs
    variant = config["productionVariants"][0]
    assert variant["variantName"] == VARIANT_NAME
    assert SAGEMAKER_INSTANCE.match(variant["instanceType"])
    assert variant["initialInstanceCount"] >= 2
    capture = config["dataCaptureConfig"]
    assert capture["enableCapture"] is True
    assert capture["initialSamplingPercentage"] == 100
    assert capture["destinationS3Uri"] == f"s3://{plan.outputs['bucketName']}/capture"
    assert ARN.match(capture["kmsKeyId"])
    assert {o["captureMode"] for o in capture["captureOptions"]} == {"Input", "Output"}
    assert ARN.match(config["kmsKeyArn"])


def test_autoscaling_targets_the_variant_on_invocations(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    target = one(plan, "aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == f"endpoint/mlship-prod-endpoint/variant/{VARIANT_NAME}"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["serviceNamespace"] == "sagemaker"
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    scaling = one(plan, "aws:appautoscaling/policy:Policy").inputs
    tracking = scaling["targetTrackingScalingPolicyConfiguration"]
    assert scaling["policyType"] == "TargetTrackingScaling"
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    assert tracking["targetValue"] == 300


def test_sagemaker_alarms_use_the_documented_metrics(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    # The service's alarms (the model-signal alarms: tests/infra/test_signals.py).
    alarms = {
        a.inputs["metricName"]: a.inputs
        for a in plan.of_type(rules.ALARM)
        if a.inputs["namespace"] != "mlship-prod/ModelSignals"
    }
    assert set(alarms) == {
        "ModelLatency",
        "Invocation5XXErrors",
        "Invocation4XXErrors",
        "CPUUtilization",
        "MemoryUtilization",
    }
    for name, alarm in alarms.items():
        namespace = (
            "/aws/sagemaker/Endpoints"
            if name in ("CPUUtilization", "MemoryUtilization")
            else "AWS/SageMaker"
        )
        assert alarm["namespace"] == namespace
        assert alarm["dimensions"] == {
            "EndpointName": "mlship-prod-endpoint",
            "VariantName": VARIANT_NAME,
        }
        assert alarm["actionsEnabled"] is True
        assert alarm["alarmActions"] == alarm["okActions"]
        assert all(a.startswith("arn:aws:sns:eu-west-1:") for a in alarm["alarmActions"])
    assert alarms["ModelLatency"]["extendedStatistic"] == "p99"
    assert alarms["ModelLatency"]["threshold"] == 300 * 1000  # microseconds
    assert alarms["Invocation5XXErrors"]["statistic"] == "Sum"


def test_alert_topic_is_kms_encrypted_and_cloudwatch_may_publish(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["prod"]
    topic = one(plan, "aws:sns/topic:Topic").inputs
    assert ARN.match(topic["kmsMasterKeyId"])
    key = next(k for k in plan.of_type(rules.KMS_KEY) if "monitoring" in k.name)
    services = [s for s in policy(key)["Statement"] if "Service" in s.get("Principal", {})]
    # CloudWatch alarms, and EventBridge for the scheduled batch scoring's failed runs.
    assert services[0]["Principal"]["Service"] == [
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
    ]
    publishers = {
        st["Principal"]["Service"]: st for st in policy(one(plan, rules.TOPIC_POLICY))["Statement"]
    }
    assert set(publishers) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    for st in publishers.values():
        assert st["Action"] == "sns:Publish"
        assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    subscription = one(plan, "aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == (
        "email",
        "ml-oncall@example.com",
    )


def test_deploy_role_trusts_only_main_and_environments_of_one_repo(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["prod"]
    role = next(r for r in plan.of_type(rules.ROLE) if r.inputs["name"] == "mlship-prod-deploy")
    (statement,) = policy(role, "assumeRolePolicy")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(
        ":oidc-provider/token.actions.githubusercontent.com"
    )
    cond = statement["Condition"]
    assert set(cond) == {"StringEquals"}
    assert cond["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:example-org/mlship:ref:refs/heads/main",
        "repo:example-org/mlship:environment:production",
    ]
    provider = one(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]


def test_existing_oidc_provider_is_reused_and_serverless_has_no_rollout(
    serverless_plan: StackPlan,
) -> None:
    plan = serverless_plan
    assert plan.findings == []
    assert plan.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    variant = one(plan, rules.ENDPOINT_CONFIG).inputs["productionVariants"][0]
    assert variant["serverlessConfig"] == {"memorySizeInMb": 2048, "maxConcurrency": 5}
    assert "instanceType" not in variant
    model = one(plan, "aws:sagemaker/model:Model").inputs
    assert model["enableNetworkIsolation"] is False  # not supported by serverless endpoints
    assert "kmsKeyArn" not in one(plan, rules.ENDPOINT_CONFIG).inputs
    assert "deploymentConfig" not in one(plan, rules.ENDPOINT).inputs
    assert plan.of_type("aws:appautoscaling/target:Target") == []
    metrics = {a.inputs["metricName"] for a in plan.of_type(rules.ALARM)}
    assert "CPUUtilization" not in metrics
    server = one(plan, "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer").inputs
    assert server["artifactStoreUri"] == f"s3://{plan.outputs['bucketName']}/mlflow"
    assert server["trackingServerSize"] == "Small"
    assert plan.outputs["mlflowTrackingServerArn"].startswith("arn:aws:sagemaker:")


def test_every_arn_in_the_plan_is_well_formed(plans: dict[str, StackPlan]) -> None:
    pattern = re.compile(r"arn:aws:[^\"'\s,\]}]+")
    for plan in plans.values():
        text = json.dumps([r.inputs for r in plan.resources])
        found = pattern.findall(text)
        assert found
        for arn in found:
            assert (
                ARN.match(arn)
                or arn.startswith("arn:aws:iam::aws:policy/")
                or (arn.startswith("arn:aws:eks::aws:cluster-access-policy/"))
            ), arn


def test_every_aws_and_kubernetes_resource_lives_in_a_component(
    plans: dict[str, StackPlan],
) -> None:
    for plan in plans.values():
        components = {r.urn for r in plan.resources if not r.custom}
        for r in plan.resources:
            if r.custom:
                assert r.parent in components, r.name


def test_names_fit_aws_limits_for_the_longest_environment_and_region() -> None:
    from infra.naming import Naming

    naming = Naming("mlship", "abcdefghijkl")  # 12 characters: the longest allowed
    assert len(naming.bucket("123456789012", "ap-southeast-4")) <= 63  # S3
    assert len(naming.endpoint) <= 63  # SageMaker endpoint names
    for role in ("sagemaker-execution", "deploy", "pods", "mlflow", "cluster-nodes"):
        assert len(naming.name(role)) <= 64  # IAM role names
    assert len(f"{naming.name('cluster')}-control-plane") <= 64
    assert re.match(r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$", naming.bucket("123456789012", "eu-west-1"))


def test_models_and_configurations_outlive_a_rolled_back_update(
    plans: dict[str, StackPlan],
) -> None:
    """Retained on delete: after a SageMaker rollback the endpoint still runs the previous ones
    (terraform-provider-aws #48997); the rollout prunes them later (infra/rollout.py)."""
    plan = plans["prod"]
    retained = {r.type for r in plan.resources if r.retain_on_delete}
    assert retained == {"aws:sagemaker/model:Model", rules.ENDPOINT_CONFIG}
    config = one(plan, rules.ENDPOINT_CONFIG).inputs
    assert plan.outputs["endpointConfigName"] == config["name"]
    assert one(plan, rules.ENDPOINT).inputs["endpointConfigName"] == config["name"]
    assert config["name"].startswith("mlship-prod-sagemaker-config-")
