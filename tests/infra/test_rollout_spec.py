"""One rollout spec, compiled for SageMaker, EKS (Argo Rollouts) and the in-app policy.

The Argo custom resources have no schema in kubernetes-validate; their fields are checked
against Argo Rollouts' documented spec: the Go types of ``pkg/apis/rollouts/v1alpha1``
(``types.go``: Rollout, RolloutSpec, ObjectRef, CanaryStrategy, CanaryStep, RolloutPause,
RolloutAnalysisBackground, AnalysisTemplateRef; ``analysis_types.go``: AnalysisTemplateSpec,
Metric, MetricProvider, CloudWatchMetric, CloudWatchMetricDataQuery, CloudWatchMetricStat,
CloudWatchMetricStatMetric), as https://argoproj.github.io/argo-rollouts/features/specification/
, /migrating/ (``workloadRef.scaleDown``: never, onsuccess, progressively) and
/analysis/cloudwatch/ describe them.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from core.errors import ConfigError
from core.flags import CHALLENGER_FLAG, parse_flags
from infra.components.monitoring import eks_alarm_specs
from infra.config import StackConfig
from infra.plan import StackPlan, render, run_stack
from infra.rollout_spec import FLAGS_KEY, flags_document, flags_json

VALID = {"environment": "dev", "imageTag": "abc123", "githubRepository": "example-org/mlship"}

# Argo Rollouts v1alpha1 fields (json tags of the Go types named in the module docstring).
ROLLOUT_SPEC = {"replicas", "selector", "template", "workloadRef", "minReadySeconds", "strategy",
                "revisionHistoryLimit", "paused", "progressDeadlineSeconds",
                "progressDeadlineAbort", "restartAt", "analysis", "rollbackWindow"}  # fmt: skip
WORKLOAD_REF = {"apiVersion", "kind", "name", "scaleDown"}
SCALE_DOWN = {"never", "onsuccess", "progressively"}
CANARY = {"canaryService", "stableService", "steps", "trafficRouting", "maxUnavailable",
          "maxSurge", "analysis", "antiAffinity", "canaryMetadata", "stableMetadata",
          "scaleDownDelaySeconds", "scaleDownDelayRevisionLimit", "abortScaleDownDelaySeconds",
          "dynamicStableScale", "pingPong", "minPodsPerReplicaSet",
          "replicaProgressThreshold"}  # fmt: skip
CANARY_STEP = {"setWeight", "pause", "experiment", "analysis", "setCanaryScale",
               "setHeaderRoute", "setMirrorRoute", "plugin"}  # fmt: skip
BACKGROUND_ANALYSIS = {"templates", "args", "dryRun", "measurementRetention", "analysisRunMetadata",
                       "startingStep"}  # fmt: skip
TEMPLATE_REF = {"templateName", "clusterScope"}
METRIC = {"name", "interval", "initialDelay", "count", "successCondition", "failureCondition",
          "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "provider",
          "consecutiveSuccessLimit"}  # fmt: skip
CLOUDWATCH = {"interval", "metricDataQueries"}
QUERY = {"id", "expression", "label", "metricStat", "period", "returnData"}
METRIC_STAT = {"metric", "period", "stat", "unit"}
STAT_METRIC = {"dimensions", "metricName", "namespace"}


def _parse(**overrides: Any) -> StackConfig:
    raw = {**VALID, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in overrides.items()}}
    return StackConfig.parse(raw, project="mlship", stack="t", region="eu-west-1")


# -- the spec in stack config --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "strategy", "percent"),
    [
        ({"rolloutSteps": [50], "instanceCount": 2, "autoscalingMaxCapacity": 4}, "canary", 50),
        (
            {"rolloutSteps": [25, 50, 75], "instanceCount": 4, "autoscalingMaxCapacity": 4},
            "linear",
            25,
        ),
        ({"rolloutSteps": [], "rolloutStrategy": "all_at_once"}, "all_at_once", 50),
    ],
)
def test_steps_compile_to_sagemaker_traffic_shifting(
    overrides: dict[str, Any], strategy: str, percent: int
) -> None:
    cfg = _parse(**overrides)
    assert (cfg.rollout.strategy, cfg.rollout.percent) == (strategy, percent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rolloutSteps": [50, 10]}, "steps must rise strictly"),
        ({"rolloutSteps": [10, 50], "instanceCount": 2, "autoscalingMaxCapacity": 2},
         "equal linear steps of 10-50%"),
        ({"rolloutSteps": [60]}, "a SageMaker canary is at most 50%"),
        ({"rolloutSteps": [10], "instanceCount": 2, "autoscalingMaxCapacity": 2},
         "a 10% step of 2 instance"),
        ({"rolloutSteps": [100]}, "rolloutSteps entry 100 is not a whole number 1-99"),
        ({"rolloutChallengerDataKey": "models/v2/model.tar.gz"}, "network isolation"),
        ({"target": "eks", "rolloutChallengerDataKey": "other/model.tar.gz"},
         "must be a key under models/"),
        ({"target": "eks", "rolloutChallengerDataKey": "models/current/model.tar.gz"},
         "the challenger must be another bundle"),
        ({"target": "eks", "rolloutRoutingHeader": "X User"}, "give an HTTP header name"),
    ],
)  # fmt: skip
def test_bad_rollout_specs_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(**overrides)


def test_flags_document_is_what_the_service_accepts() -> None:
    cfg = _parse(
        target="eks",
        rolloutSteps=[10, 50],
        rolloutChallengerDataKey="models/v2/model.tar.gz",
        rolloutShadowPercent=20,
        rolloutRoutingHeader="X-Tenant-ID",
        rolloutMinAgreementPercent=95,
        rolloutMaxLatencyDeltaMs=15,
    )
    doc = parse_flags(flags_json(cfg.rollout_spec).encode(), "published")  # the app's parser
    assert doc == flags_document(cfg.rollout_spec)
    assert doc.routing_key.header == "X-Tenant-ID"
    assert doc.flags[CHALLENGER_FLAG].percent == 10  # the first step
    assert doc.shadow.percent == 20
    assert (doc.thresholds.min_agreement, doc.thresholds.max_latency_delta_ms) == (0.95, 15)
    assert doc.thresholds.max_error_rate == 0.01
    share = sum(doc.is_enabled(CHALLENGER_FLAG, f"t-{i}") for i in range(10_000)) / 10_000
    assert abs(share - 0.10) < 0.015


# -- the compiled stacks -------------------------------------------------------------------


def test_plan_shows_sagemaker_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main as mlship

    assert mlship(["plan", "prod"]) == 0
    out = capsys.readouterr().out
    assert "Rollout: steps 50%, bake 600 s" in out
    assert "image change: SageMaker blue/green CANARY 50% of capacity, wait 600 s" in out
    assert "model change: none in progress" in out


@pytest.fixture(scope="module")
def canary_plan() -> StackPlan:
    return run_stack(
        "eks",
        overrides={
            "mlship:rolloutSteps": "[25, 50]",
            "mlship:rolloutChallengerDataKey": "models/v2/model.tar.gz",
            "mlship:rolloutShadowPercent": "10",
        },
    )


def _one(plan: StackPlan, type_: str) -> dict[str, Any]:
    (found,) = plan.of_type(type_)
    return found.inputs


def test_eks_plan_shows_the_compiled_rollout(canary_plan: StackPlan) -> None:
    text = render(canary_plan)
    assert "Argo Rollouts canary (setWeight 25 -> setWeight 50)" in text
    assert "model change: challenger s3://<bucket>/models/v2/model.tar.gz" in text
    assert "25% of X-User-ID keys, shadow 10%" in text
    assert canary_plan.findings == []


def test_argo_installed_from_its_pinned_chart(canary_plan: StackPlan) -> None:
    release = _one(canary_plan, "kubernetes:helm.sh/v3:Release")
    assert release["chart"] == "argo-rollouts"
    assert release["version"] == "2.40.5"
    assert release["repositoryOpts"]["repo"] == "https://argoproj.github.io/argo-helm"
    sa = release["values"]["serviceAccount"]
    assert sa["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    policies = [
        json.loads(r.inputs["policy"])
        for r in canary_plan.of_type("aws:iam/rolePolicy:RolePolicy")
        if "argo-rollouts" in r.name
    ]
    assert policies == [
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadAnalysisMetrics",
                    "Effect": "Allow",
                    "Action": ["cloudwatch:GetMetricData"],
                    "Resource": "*",
                }
            ],
        }
    ]


def test_rollout_replaces_the_deployment_with_documented_fields(canary_plan: StackPlan) -> None:
    rollout = _one(canary_plan, "kubernetes:argoproj.io/v1alpha1:Rollout")
    spec = rollout["spec"]
    assert set(spec) <= ROLLOUT_SPEC
    assert set(spec["workloadRef"]) <= WORKLOAD_REF
    assert spec["workloadRef"]["scaleDown"] in SCALE_DOWN
    deployment = _one(canary_plan, "kubernetes:apps/v1:Deployment")
    assert spec["workloadRef"]["name"] == deployment["metadata"]["name"]
    assert spec["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    canary = spec["strategy"]["canary"]
    assert set(canary) <= CANARY
    for step in canary["steps"]:
        assert len(step) == 1 and set(step) <= CANARY_STEP
    assert canary["steps"] == [
        {"setWeight": 25}, {"pause": {"duration": "300s"}},
        {"setWeight": 50}, {"pause": {"duration": "300s"}},
    ]  # fmt: skip
    assert set(canary["analysis"]) <= BACKGROUND_ANALYSIS
    (ref,) = canary["analysis"]["templates"]
    assert set(ref) <= TEMPLATE_REF
    template = _one(canary_plan, "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate")
    assert ref["templateName"] == template["metadata"]["name"]
    # The HPA now scales the Rollout: it would otherwise fight Argo over the Deployment.
    hpa = _one(canary_plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": rollout["metadata"]["name"],
    }


def test_analysis_fails_where_the_alarms_fire(canary_plan: StackPlan) -> None:
    template = _one(canary_plan, "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate")
    cfg = canary_plan.config
    alarms = {
        a.role: a
        for a in eks_alarm_specs(
            cluster_name=f"mlship-{cfg.environment}-cluster",
            namespace=cfg.project,
            workload=cfg.project,
            alarms=cfg.alarms,
            min_pods=cfg.autoscaling.min_capacity,
        )
    }
    metrics = template["spec"]["metrics"]
    assert {m["name"] for m in metrics} == set(alarms)
    for m in metrics:
        assert set(m) <= METRIC
        assert set(m["provider"]) == {"cloudWatch"}
        cw = m["provider"]["cloudWatch"]
        assert set(cw) <= CLOUDWATCH
        (query,) = cw["metricDataQueries"]
        assert set(query) <= QUERY
        assert set(query["metricStat"]) <= METRIC_STAT
        assert set(query["metricStat"]["metric"]) <= STAT_METRIC
        alarm = alarms[m["name"]]
        stat_metric = query["metricStat"]["metric"]
        assert (stat_metric["namespace"], stat_metric["metricName"]) == (
            alarm.namespace,
            alarm.metric_name,
        )
        dims = {d["name"]: d["value"] for d in stat_metric["dimensions"]}
        assert dims == dict(alarm.dimensions)
        op = "<=" if alarm.comparison == "GreaterThanThreshold" else ">="
        assert m["successCondition"] == f"all(result[0].Values, {{# {op} {alarm.threshold:g}}})"


def test_model_change_publishes_the_policy_and_serves_the_challenger(
    canary_plan: StackPlan,
) -> None:
    obj = _one(canary_plan, "aws:s3/bucketObject:BucketObject")
    assert obj["key"] == FLAGS_KEY
    assert obj["serverSideEncryption"] == "aws:kms"
    assert obj["kmsKeyId"].startswith("arn:aws:kms:")
    assert obj["content"] == flags_json(canary_plan.config.rollout_spec)
    deployment = _one(canary_plan, "kubernetes:apps/v1:Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    bucket = env["MLSHIP_MODEL_URI"].split("/")[2]
    assert env["MLSHIP_CHALLENGER_URI"] == f"s3://{bucket}/models/v2/model.tar.gz"
    assert env["MLSHIP_FLAGS_URI"] == f"s3://{bucket}/{FLAGS_KEY}"


def test_kubernetes_objects_still_validate_strictly(canary_plan: StackPlan) -> None:
    version = canary_plan.config.eks.kubernetes_version
    objects = [
        r.inputs
        for r in canary_plan.resources
        if r.type.startswith("kubernetes:") and r.custom and "kind" in r.inputs
    ]
    builtin = [o for o in objects if not o["apiVersion"].startswith("argoproj.io/")]
    assert {o["kind"] for o in builtin} >= {"Deployment", "HorizontalPodAutoscaler"}
    for obj in builtin:
        kubernetes_validate.validate(obj, version, strict=True)
