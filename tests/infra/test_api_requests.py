"""Every planned AWS request passes botocore's service models (and the provider's own limits);
each kind of request the cloud would refuse is refused here, offline."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable

import pytest

from infra import rules
from infra.api import plan_calls, validate_plan
from infra.api.calls import CALLS, NOT_CALLED
from infra.api.shapes import JAVA_PATTERNS, validate
from infra.mocks import Recorded
from infra.plan import StackPlan

Breaker = Callable[[list[Recorded]], None]
# The services the issue asks to cover, and the operations each plan must include.
REQUIRED = {
    "sagemaker": {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint"},
    "application-autoscaling": {"RegisterScalableTarget", "PutScalingPolicy"},
    "cloudwatch": {"PutMetricAlarm"},
    "s3": {"CreateBucket", "PutBucketEncryption", "PutPublicAccessBlock"},
    "iam": {"CreateRole", "PutRolePolicy"},
    "ecr": {"CreateRepository", "PutLifecyclePolicy"},
}
EKS = {"CreateCluster", "CreateNodegroup", "CreateAddon", "AssociateAccessPolicy"}


def first(resources: list[Recorded], type_: str, contains: str = "") -> Recorded:
    return next(r for r in resources if r.type == type_ and contains in r.name)


@pytest.mark.parametrize("stack", ["dev", "prod", "eks", "prod-vpc", "serverless"])
def test_every_planned_request_is_valid(every_plan: dict[str, StackPlan], stack: str) -> None:
    plan = every_plan[stack]
    calls, unknown = plan_calls(plan.resources, plan.config.region)
    assert unknown == []
    assert len(calls) >= 25
    assert validate_plan(plan.resources, plan.config.region) == []
    operations = {(c.service, c.operation) for _, c in calls}
    if plan.config.target == "eks":
        assert {op for svc, op in operations if svc == "eks"} >= EKS
    else:
        required = dict(REQUIRED)
        if plan.config.serverless is not None:  # no scaling target for serverless endpoints
            required.pop("application-autoscaling")
            required["sagemaker"] = required["sagemaker"] - {"UpdateEndpoint"} | {
                "CreateMlflowTrackingServer"
            }
        for service, ops in required.items():
            assert {op for svc, op in operations if svc == service} >= ops, service


def test_every_planned_aws_type_is_checked_or_says_why_not(
    every_plan: dict[str, StackPlan],
) -> None:
    planned = {
        r.type for p in every_plan.values() for r in p.resources if r.type.startswith("aws:")
    }
    assert planned - set(CALLS) == set(NOT_CALLED)
    assert all(reason for reason in NOT_CALLED.values())


def _set(type_: str, contains: str, path: str, value: object) -> Breaker:
    """Set a (dotted, list indexes as digits) input path of the first matching resource."""

    def breaker(rs: list[Recorded]) -> None:
        target: object = first(rs, type_, contains).inputs
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value  # type: ignore[index]

    return breaker


def _eleven_rollback_alarms(rs: list[Recorded]) -> None:
    config = first(rs, rules.ENDPOINT).inputs["deploymentConfig"]["autoRollbackConfiguration"]
    config["alarms"] = [{"alarmName": f"a{i}"} for i in range(11)]


ENDPOINT_TIMEOUT = "deploymentConfig.blueGreenUpdatePolicy.maximumExecutionTimeoutInSeconds"
ROUTING = "deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration"
VARIANT = "productionVariants.0"
CASES: list[tuple[str, str, Breaker, str]] = [
    # Issue 10 item 7: the provider refuses what the API would take.
    (
        "prod",
        "endpoint timeout above the provider's 14400",
        _set(rules.ENDPOINT, "", ENDPOINT_TIMEOUT, 28_800),
        "sagemaker CreateEndpoint: DeploymentConfig.BlueGreenUpdatePolicy."
        "MaximumExecutionTimeoutInSeconds: 28800 is outside the provider's range 600-14400",
    ),
    (
        "prod",
        "endpoint timeout below the API's 600",
        _set(rules.ENDPOINT, "", ENDPOINT_TIMEOUT, 599),
        "MaximumExecutionTimeoutInSeconds: 599 is below the minimum 600",
    ),
    (
        "prod",
        "canary size type",
        _set(rules.ENDPOINT, "", f"{ROUTING}.canarySize.type", "PERCENT"),
        "'PERCENT' is not one of INSTANCE_COUNT, CAPACITY_PERCENT",
    ),
    (
        "prod",
        "too many rollback alarms",
        _eleven_rollback_alarms,
        "AutoRollbackConfiguration.Alarms: 11 items is above the maximum 10",
    ),
    (
        "prod",
        "bake longer than an hour",
        _set(rules.ENDPOINT, "", f"{ROUTING}.waitIntervalInSeconds", 3601),
        "WaitIntervalInSeconds: 3601 is above the maximum 3600",
    ),
    (
        "dev",
        "instance type",
        _set(rules.ENDPOINT_CONFIG, "", f"{VARIANT}.instanceType", "ml.m5.largest"),
        "sagemaker CreateEndpointConfig: ProductionVariants[0].InstanceType: 'ml.m5.largest' is "
        "not one of",
    ),
    (
        "prod",
        "capture percentage",
        _set(rules.ENDPOINT_CONFIG, "", "dataCaptureConfig.initialSamplingPercentage", 101),
        "DataCaptureConfig.InitialSamplingPercentage: 101 is above the maximum 100",
    ),
    (
        "dev",
        "model name too long",
        _set("aws:sagemaker/model:Model", "", "name", "m" * 64),
        "sagemaker CreateModel: ModelName: 64 characters is above the maximum 63",
    ),
    (
        "dev",
        "model name with an underscore",
        _set("aws:sagemaker/model:Model", "", "name", "mlship_model"),
        "ModelName: 'mlship_model' does not match pattern",
    ),
    (
        "dev",
        "SageMaker tag key",
        _set("aws:sagemaker/model:Model", "", "tags", {"k" * 129: "v"}),
        "Tags[0].Key: 129 characters is above the maximum 128",
    ),
    (
        "dev",
        "scaling policy type",
        _set("aws:appautoscaling/policy:Policy", "", "policyType", "TargetTracking"),
        "application-autoscaling PutScalingPolicy: PolicyType: 'TargetTracking' is not one of",
    ),
    (
        "dev",
        "scalable dimension",
        _set(
            "aws:appautoscaling/target:Target", "", "scalableDimension", "sagemaker:variant:Count"
        ),
        "RegisterScalableTarget: ScalableDimension: 'sagemaker:variant:Count' is not one of",
    ),
    (
        "dev",
        "alarm comparison",
        _set(rules.ALARM, "errors-5xx", "comparisonOperator", "GreaterThan"),
        "cloudwatch PutMetricAlarm: ComparisonOperator: 'GreaterThan' is not one of",
    ),
    (
        "dev",
        "alarm evaluation periods",
        _set(rules.ALARM, "errors-5xx", "evaluationPeriods", 0),
        "EvaluationPeriods: 0 is below the minimum 1",
    ),
    (
        "dev",
        "missing data treatment",
        _set(rules.ALARM, "errors-5xx", "treatMissingData", "ignored"),
        "TreatMissingData: 'ignored' is not one of breaching, ignore, missing, notBreaching",
    ),
    (
        "dev",
        "versioning status",
        _set(rules.BUCKET_VERSIONING, "", "versioningConfiguration.status", "On"),
        "s3 PutBucketVersioning: VersioningConfiguration.Status: 'On' is not one of",
    ),
    (
        "dev",
        "encryption algorithm",
        _set(
            rules.BUCKET_SSE, "", "rules.0.applyServerSideEncryptionByDefault.sseAlgorithm", "kms"
        ),
        "ApplyServerSideEncryptionByDefault.SSEAlgorithm: 'kms' is not one of",
    ),
    (
        "dev",
        "role name with a space",
        _set(rules.ROLE, "execution", "name", "mlship dev execution"),
        "iam CreateRole: RoleName: 'mlship dev execution' does not match pattern",
    ),
    (
        "dev",
        "role name too long",
        _set(rules.ROLE, "execution", "name", "r" * 65),
        "RoleName: 65 characters is above the maximum 64",
    ),
    (
        "dev",
        "role session too long",
        _set(rules.ROLE, "github", "maxSessionDuration", 43_201),
        "MaxSessionDuration: 43201 is above the maximum 43200",
    ),
    (
        "dev",
        "ECR repository name",
        _set(rules.ECR_REPOSITORY, "", "name", "MLship"),
        "ecr CreateRepository: repositoryName: 'MLship' does not match pattern",
    ),
    (
        "dev",
        "ECR tag mutability",
        _set(rules.ECR_REPOSITORY, "", "imageTagMutability", "immutable"),
        "imageTagMutability: 'immutable' is not one of",
    ),
    (
        "eks",
        "add-on conflict resolution",
        _set("aws:eks/addon:Addon", "vpc-cni", "resolveConflictsOnCreate", "REPLACE"),
        "eks CreateAddon: resolveConflicts: 'REPLACE' is not one of",
    ),
    (
        "eks",
        "access scope type",
        _set(
            "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "", "accessScope.type", "ns"
        ),
        "eks AssociateAccessPolicy: accessScope.type: 'ns' is not one of",
    ),
    (
        "eks",
        "node group minimum",
        _set("aws:eks/nodeGroup:NodeGroup", "", "scalingConfig.minSize", -1),
        "scalingConfig.minSize: -1 is below the minimum 0",
    ),
    (
        "eks",
        "cluster name",
        _set(rules.EKS_CLUSTER, "", "name", "-cluster"),
        "eks CreateCluster: name: '-cluster' does not match pattern",
    ),
]


@pytest.mark.parametrize(("stack", "what", "breaker", "message"), CASES, ids=[c[1] for c in CASES])
def test_invalid_request_is_a_finding(
    every_plan: dict[str, StackPlan], stack: str, what: str, breaker: Breaker, message: str
) -> None:
    plan = every_plan[stack]
    resources = copy.deepcopy(plan.resources)
    assert validate_plan(resources, plan.config.region) == []
    breaker(resources)
    findings = validate_plan(resources, plan.config.region)
    assert findings, what
    assert any(message in f.message for f in findings), [f.message for f in findings]
    assert {f.rule for f in findings} == {"api_request"}


def test_cases_cover_every_required_service() -> None:
    services = Counter(c[3].split(" ", 1)[0] for c in CASES if " " in c[3].split(":", 1)[0])
    assert set(services) >= set(REQUIRED) | {"eks"}


def test_an_aws_type_without_converter_is_a_finding(every_plan: dict[str, StackPlan]) -> None:
    resources = copy.deepcopy(every_plan["dev"].resources)
    resources[0].type = "aws:sqs/queue:Queue"
    findings = validate_plan(resources, "eu-west-1")
    assert [f.message for f in findings] == ["no API calls known for this type"]


def test_param_validator_reports_missing_and_unknown_members() -> None:
    problems = [str(p) for p in validate("sagemaker", "CreateEndpoint", {"Name": "x"})]
    assert problems[0] == 'Missing required parameter in input: "EndpointName"'
    assert problems[1] == 'Missing required parameter in input: "EndpointConfigName"'
    assert problems[2].startswith('Unknown parameter in input: "Name", must be one of:')


def test_java_patterns_translate_permissively() -> None:
    assert set(JAVA_PATTERNS) == {r"\p{L}\p{Z}\p{N}", r"\p{Print}", r"\uD800\uDC00-\uDBFF\uDFFF"}
    model = {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r"}
    # \p{L}: a letter outside ASCII is a letter; a control character is in none of the classes.
    tags = [{"Key": "équipe", "Value": "ml"}]
    assert validate("sagemaker", "CreateModel", {**model, "Tags": tags}) == []
    bad = validate("sagemaker", "CreateModel", {**model, "Tags": [{"Key": "a\x07", "Value": ""}]})
    assert [p.path for p in bad] == ["Tags[0].Key"]
    # Java's surrogate pairs: a character beyond the Basic Multilingual Plane is allowed.
    target = {
        "ServiceNamespace": "sagemaker",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    ok = validate(
        "application-autoscaling", "RegisterScalableTarget", {**target, "ResourceId": "e/😀"}
    )
    assert ok == []
    bad = validate(
        "application-autoscaling", "RegisterScalableTarget", {**target, "ResourceId": "\x01"}
    )
    assert [p.path for p in bad] == ["ResourceId"]
    # \p{Print}: printable ASCII only.
    policy = {**target, "ResourceId": "endpoint/e/variant/v", "PolicyName": "a\tb"}
    bad = validate("application-autoscaling", "PutScalingPolicy", policy)
    assert [p.path for p in bad] == ["PolicyName"]
