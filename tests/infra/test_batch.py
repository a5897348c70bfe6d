"""Scheduled batch scoring: schedule -> pipeline (check, then score) -> dated output, alerts.

The Transform step is compared with ``pipelines/sagemaker/requests.transform_job_request``
(tests may import both sides; infra does not import pipelines); the definition is checked with
the documented schema rules, each rule shown to fail on a definition that breaks it.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import botocore.session
import pytest

from core.baseline import baseline_keys
from core.errors import ConfigError
from infra import rules
from infra.api.shapes import validate
from infra.components.batch import PIPELINE_STATUS_EVENT
from infra.config import StackConfig
from infra.config.batch import (
    CHECK_MAX_RUNTIME_MINUTES_RANGE,
    CHECK_VOLUME_GB_RANGE,
    check_schedule_expression,
)
from infra.pipeline_definition import (
    CHECK_STEP,
    SCORE_STEP,
    definition_problems,
    resolve,
    step_requests,
)
from infra.plan import StackPlan, run_stack
from infra.rules.iam import iam_allows, role_documents
from pipelines.sagemaker.requests import (
    TransformJobSpec,
    transform_environment,
    transform_job_request,
)
from tests.infra.patterns import event_pattern_matches

PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCHEDULE = "aws:scheduler/schedule:Schedule"
BUCKET = "mlship-prod-artifacts-123456789012-eu-west-1"


def pipeline_definition(plan: StackPlan) -> dict[str, Any]:
    (pipeline,) = plan.of_type(PIPELINE)
    doc = json.loads(pipeline.inputs["pipelineDefinition"])
    assert isinstance(doc, dict)
    return doc


def step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in doc["Steps"] if s["Name"] == name]
    assert isinstance(found, dict)
    return found


def batch_model(plan: StackPlan) -> dict[str, Any]:
    (model,) = [r for r in plan.of_type("aws:sagemaker/model:Model") if "-batch-" in r.name]
    return model.inputs


def _launcher_request_is_the_step(plan: StackPlan, **job: Any) -> dict[str, Any]:
    """Assert the plan's Transform step is the request ``mlship sagemaker-transform`` sends for
    the same job (``job``: the spec's settings the stack's config changed), and return it."""
    doc = pipeline_definition(plan)
    params = {p["Name"]: p["DefaultValue"] for p in doc["Parameters"]}
    args: dict[str, Any] = resolve(step(doc, SCORE_STEP)["Arguments"], params)
    model = batch_model(plan)
    spec = TransformJobSpec(
        name=model["name"],
        image_uri=model["primaryContainer"]["image"],
        role_arn=model["executionRoleArn"],
        model_data_uri=model["primaryContainer"]["modelDataUrl"],
        input_uri=args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"],
        output_uri=args["TransformOutput"]["S3OutputPath"],
        instance_type="ml.m5.xlarge",
        instance_count=2,
        max_payload_mb=6,
        kms_key_id=args["TransformOutput"]["KmsKeyId"],
        **job,
    )
    expected = transform_job_request(spec)
    # The pipeline names the job; the step adds only the encryption of the instances' volumes.
    del expected["TransformJobName"]
    volume_key = args["TransformResources"].pop("VolumeKmsKeyId")
    assert volume_key == spec.kms_key_id
    assert args == expected
    # The container's environment: the job's payload limit is its body limit.
    assert model["primaryContainer"]["environment"] == transform_environment(spec)
    assert model["enableNetworkIsolation"] is True
    return args


def test_transform_step_is_transform_job_request_of_the_same_job(
    plans: dict[str, StackPlan],
) -> None:
    args = _launcher_request_is_the_step(plans["prod"])
    # without identifier columns the job's default processing: no DataProcessing at all
    assert "DataProcessing" not in args


def test_each_run_reads_the_input_prefix_and_writes_a_dated_prefix(
    plans: dict[str, StackPlan],
) -> None:
    doc = pipeline_definition(plans["prod"])
    params = {p["Name"]: p["DefaultValue"] for p in doc["Parameters"]}
    assert params == {
        "InputUri": f"s3://{BUCKET}/batch/input/",
        "OutputUri": f"s3://{BUCKET}/batch/output/",
    }
    score = step(doc, SCORE_STEP)["Arguments"]["TransformOutput"]["S3OutputPath"]
    assert score == {
        "Std:Join": {
            "On": "",
            "Values": [
                {"Get": "Parameters.OutputUri"},
                {"Get": "Execution.StartDateTime"},
                "/predictions/",
            ],
        }
    }
    run = resolve(score, params)
    assert run.startswith(f"s3://{BUCKET}/batch/output/2026-")
    assert run.endswith("/predictions/")


def test_scoring_runs_only_after_the_input_check_on_the_serving_image(
    plans: dict[str, StackPlan],
) -> None:
    """mlship's check (the default): the serving image the transform job runs, its
    ``check-input`` with the job's format and payload limit, over the same input prefix and
    the same bundle; the report to the run's dated data-quality/ prefix."""
    plan = plans["prod"]
    doc = pipeline_definition(plan)
    check, score = step(doc, CHECK_STEP), step(doc, SCORE_STEP)
    assert check["Type"] == "Processing"
    assert score["DependsOn"] == [CHECK_STEP]
    params = {p["Name"]: p["DefaultValue"] for p in doc["Parameters"]}
    args, transform = resolve(check["Arguments"], params), resolve(score["Arguments"], params)
    container = batch_model(plan)["primaryContainer"]
    assert args["AppSpecification"]["ImageUri"] == container["image"]
    assert "ContainerEntrypoint" not in args["AppSpecification"]  # the image's entrypoint.sh
    command = args["AppSpecification"]["ContainerArguments"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "check-input"
    assert options["--content-type"] == transform["TransformInput"]["ContentType"]
    assert options["--max-payload-mb"] == str(transform["MaxPayloadInMB"])
    # the data-quality gate: the shares that set off the endpoint's alarms
    assert plan.config.signals is not None
    assert options["--max-missing-percent"] == str(plan.config.signals.missing_percent)
    assert options["--max-out-of-range-percent"] == str(plan.config.signals.out_of_range_percent)
    inputs = {i["S3Input"]["LocalPath"]: i["S3Input"]["S3Uri"] for i in args["ProcessingInputs"]}
    assert (
        inputs[options["--input"]]
        == transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    )
    model_dir, model_file = options["--model"].rsplit("/", 1)
    assert f"{inputs[model_dir]}" == container["modelDataUrl"]
    assert container["modelDataUrl"].endswith("/" + model_file)
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    assert options["--report"].startswith(output["S3Output"]["LocalPath"] + "/")
    assert output["S3Output"]["S3Uri"].endswith("/data-quality/")
    # "Save and Access Metadata Information About Your Processing Job": the job's ExitMessage
    assert options["--message"] == "/opt/ml/output/message"
    assert args["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert "batchBaselinePrefix" not in plan.outputs  # nothing to publish for this check


def test_check_runs_on_its_own_instance_type_volume_and_time_limit() -> None:
    """The check is one processing job on ``batchCheckInstanceType`` with a volume of
    ``batchCheckVolumeGb`` (it holds the whole input prefix) for at most
    ``batchCheckMaxRuntimeMinutes``, whatever the transform job runs on: ml.c6i.large runs a
    transform job but not a processing job."""
    plan = run_stack(
        "prod",
        overrides={
            "mlship:batchInstanceType": "ml.c6i.large",
            "mlship:batchCheckInstanceType": "ml.r5.large",
            "mlship:batchCheckVolumeGb": "500",
            "mlship:batchCheckMaxRuntimeMinutes": "240",
        },
    )
    assert plan.findings == []  # each request passes botocore's model of its API
    doc = pipeline_definition(plan)
    cluster = step(doc, CHECK_STEP)["Arguments"]["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["InstanceCount"]) == ("ml.r5.large", 1)
    assert cluster["VolumeSizeInGB"] == 500
    stopping = step(doc, CHECK_STEP)["Arguments"]["StoppingCondition"]
    assert stopping == {"MaxRuntimeInSeconds": 240 * 60}
    transform = step(doc, SCORE_STEP)["Arguments"]["TransformResources"]
    assert transform["InstanceType"] == "ml.c6i.large"
    # the key's range is the API's (ProcessingClusterConfig.VolumeSizeInGB)
    sagemaker = botocore.session.get_session().get_service_model("sagemaker")
    meta = sagemaker.shape_for("ProcessingVolumeSizeInGB").metadata
    assert (meta["min"], meta["max"]) == CHECK_VOLUME_GB_RANGE
    # ... and so is the time limit's, in whole minutes (ProcessingStoppingCondition)
    meta = sagemaker.shape_for("ProcessingMaxRuntimeInSeconds").metadata
    low, high = CHECK_MAX_RUNTIME_MINUTES_RANGE
    assert meta["min"] <= 60 * low and 60 * high == meta["max"]


def test_gzip_input_is_decompressed_by_the_job_and_by_the_check() -> None:
    """mlship:batchCompression Gzip: TransformInput.CompressionType for the job (SageMaker
    decompresses each file before splitting it) and ``--compression`` for the check, which
    reads the files the same way (tests/contract/test_input_check_job.py runs it)."""
    plan = run_stack("prod", overrides={"mlship:batchCompression": "Gzip"})
    assert plan.findings == []
    doc = pipeline_definition(plan)
    assert step(doc, SCORE_STEP)["Arguments"]["TransformInput"]["CompressionType"] == "Gzip"
    command = step(doc, CHECK_STEP)["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert dict(zip(command[1::2], command[2::2], strict=True))["--compression"] == "Gzip"
    # The check's own download stays as stored: S3CompressionType Gzip is for Pipe mode only
    # (ProcessingS3Input), and the check decompresses each file itself.
    inputs = step(doc, CHECK_STEP)["Arguments"]["ProcessingInputs"]
    assert {i["S3Input"]["S3CompressionType"] for i in inputs} == {"None"}


def test_identifier_columns_are_left_out_for_the_model_and_kept_in_the_output() -> None:
    """mlship:batchIdColumns: the Transform step's DataProcessing as "Associate Prediction
    Results with Input Records" documents it for CSV (InputFilter "$[1:]" leaves the first
    column out, JoinSource "Input" writes the input line before its answer), the same request
    ``mlship sagemaker-transform --id-columns`` sends, and the check reads each line without
    them (``--id-columns``; tests/app/test_input_check.py runs it)."""
    plan = run_stack("prod", overrides={"mlship:batchIdColumns": "2"})
    assert plan.findings == []  # the request passes botocore's model of CreateTransformJob
    args = _launcher_request_is_the_step(plan, id_columns=2)
    assert args["DataProcessing"] == {
        "InputFilter": "$[2:]",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    command = step(pipeline_definition(plan), CHECK_STEP)["Arguments"]["AppSpecification"][
        "ContainerArguments"
    ]
    assert dict(zip(command[1::2], command[2::2], strict=True))["--id-columns"] == "2"


def test_json_lines_records_pass_their_features_attribute_and_keep_the_rest() -> None:
    """mlship:batchFeaturesAttribute, the guide's JSON example: InputFilter "$.features" for
    the model, the input record kept with the answer under SageMakerOutput; the check reads
    each record's attribute the same way (``--features-attribute``)."""
    plan = run_stack(
        "prod",
        overrides={
            "mlship:batchContentType": "application/jsonlines",
            "mlship:batchFeaturesAttribute": "features",
        },
    )
    assert plan.findings == []
    args = _launcher_request_is_the_step(
        plan, content_type="application/jsonlines", features_attribute="features"
    )
    assert args["DataProcessing"] == {
        "InputFilter": "$.features",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    doc = pipeline_definition(plan)
    command = step(doc, CHECK_STEP)["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert dict(zip(command[1::2], command[2::2], strict=True))["--features-attribute"] == (
        "features"
    )


def test_model_monitor_check_reads_the_training_baseline(model_monitor_plan: StackPlan) -> None:
    doc = pipeline_definition(model_monitor_plan)
    check = step(doc, CHECK_STEP)
    assert check["Type"] == "QualityCheck"
    assert check["CheckType"] == "DATA_QUALITY"
    assert check["FailOnViolation"] is True and check["SkipCheck"] is False
    assert check["SuppliedBaselineConstraints"] == (
        f"s3://{BUCKET}/models/current/baseline/constraints.json"
    )
    assert step(doc, SCORE_STEP)["DependsOn"] == [CHECK_STEP]
    args = check["Arguments"]
    assert args["AppSpecification"]["ImageUri"] == (
        "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    )
    assert json.loads(args["Environment"]["dataset_format"]) == {"csv": {"header": False}}
    assert args["ProcessingInputs"][0]["S3Input"]["S3Uri"] == {"Get": "Parameters.InputUri"}
    assert args["NetworkConfig"]["EnableNetworkIsolation"] is True


def test_definition_passes_the_documented_schema_rules(
    plans: dict[str, StackPlan], model_monitor_plan: StackPlan
) -> None:
    assert definition_problems(pipeline_definition(plans["prod"])) == []
    assert definition_problems(pipeline_definition(model_monitor_plan)) == []


BREAKS: list[tuple[str, Any, str]] = [
    ("Version", "2023-01-01", "Version is"),
    ("Steps.1.DependsOn", ["Nope"], "depends on 'Nope'"),
    ("Steps.1.Type", "Score", "has type 'Score'"),
    ("Steps.0.Name", "Check Input", "is not 1-64 letters"),
    ("Steps.0.FailOnViolation", "true", "FailOnViolation is not a boolean"),
    ("Parameters.0.Type", "Uri", "has type 'Uri'"),
    (
        "Steps.1.Arguments.TransformInput.DataSource.S3DataSource.S3Uri",
        {"Get": "Parameters.Input"},
        "undeclared parameter 'Input'",
    ),
    (
        "Steps.1.Arguments.TransformOutput.S3OutputPath",
        {"Get": "Execution.StartTime"},
        "unknown execution variable 'StartTime'",
    ),
]


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(("path", "value", "message"), BREAKS, ids=[b[0] for b in BREAKS])
def test_each_schema_rule_refuses_a_definition_that_breaks_it(
    model_monitor_plan: StackPlan, path: str, value: Any, message: str
) -> None:
    doc = copy.deepcopy(pipeline_definition(model_monitor_plan))  # a QualityCheck step
    _set(doc, path, value)
    problems = definition_problems(doc)
    assert any(message in p for p in problems), problems


def test_step_job_requests_are_what_botocore_accepts(
    plans: dict[str, StackPlan], model_monitor_plan: StackPlan
) -> None:
    for plan in (model_monitor_plan, plans["prod"]):
        requests = step_requests(pipeline_definition(plan))
        assert [(name, op) for name, op, _ in requests] == [
            (CHECK_STEP, "CreateProcessingJob"),
            (SCORE_STEP, "CreateTransformJob"),
        ]
        for _, op, request in requests:
            assert validate("sagemaker", op, request) == [], op
    # and they are refused when SageMaker would refuse them
    _, _, transform = requests[1]
    transform["TransformResources"]["InstanceCount"] = 0
    transform["TransformResources"]["InstanceType"] = "m5.large"
    found = {p.path for p in validate("sagemaker", "CreateTransformJob", transform)}
    assert {"TransformResources.InstanceCount", "TransformResources.InstanceType"} <= found


def test_plan_reports_a_broken_definition(plans: dict[str, StackPlan]) -> None:
    from infra.api import validate_plan

    plan = plans["prod"]
    resources = [copy.deepcopy(r) for r in plan.resources]
    (pipeline,) = [r for r in resources if r.type == PIPELINE]
    doc = json.loads(pipeline.inputs["pipelineDefinition"])
    doc["Steps"][1]["Arguments"]["TransformResources"]["InstanceCount"] = 0
    doc["Steps"][1]["DependsOn"] = ["Missing"]
    pipeline.inputs["pipelineDefinition"] = json.dumps(doc)
    messages = [f.message for f in validate_plan(resources, plan.config.region)]
    assert any("CreateTransformJob" in m and "InstanceCount" in m for m in messages), messages
    assert any("CreatePipeline" in m and "depends on 'Missing'" in m for m in messages), messages


def test_schedule_starts_the_pipeline_with_a_role_that_may_do_only_that(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["prod"]
    (schedule,) = plan.of_type(SCHEDULE)
    (pipeline,) = plan.of_type(PIPELINE)
    s = schedule.inputs
    assert s["scheduleExpression"] == "cron(0 2 * * ? *)"
    assert s["scheduleExpressionTimezone"] == "UTC"
    pipeline_arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/mlship-prod-batch-scoring"
    assert pipeline.inputs["pipelineName"] == "mlship-prod-batch-scoring"
    assert s["target"]["arn"] == pipeline_arn
    assert "sagemakerPipelineParameters" in s["target"]
    docs = role_documents(plan.resources, s["target"]["roleArn"])
    assert iam_allows(docs, "sagemaker:StartPipelineExecution", pipeline_arn)
    other = pipeline_arn.replace("batch-scoring", "other")
    assert not iam_allows(docs, "sagemaker:StartPipelineExecution", other)
    assert not iam_allows(docs, "sagemaker:CreateTransformJob", "*")
    (role,) = [
        r for r in plan.of_type(rules.ROLE) if r.inputs["name"] == "mlship-prod-batch-scheduler"
    ]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_the_release_may_write_the_baseline_where_the_check_reads_it(
    plans: dict[str, StackPlan], model_monitor_plan: StackPlan
) -> None:
    plan = model_monitor_plan
    prefix = plan.outputs["batchBaselinePrefix"]  # what the rollout passes to `mlship publish`
    assert prefix == "models/current/baseline/"  # Pulumi.yaml's default
    keys = baseline_keys(prefix)
    check = step(pipeline_definition(plan), CHECK_STEP)
    assert check["SuppliedBaselineStatistics"] == f"s3://{BUCKET}/{keys.statistics}"
    assert check["SuppliedBaselineConstraints"] == f"s3://{BUCKET}/{keys.constraints}"
    deploy = role_documents(plan.resources, "mlship-prod-deploy")
    job = role_documents(plan.resources, batch_model(plan)["executionRoleArn"])
    for key in (keys.statistics, keys.constraints):
        assert iam_allows(deploy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/{key}")
        assert iam_allows(job, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{key}")
    # mlship's check reads no baseline: the pipeline's role reads nothing (the job role reads
    # models/*, the bundles, which holds the default baseline prefix)
    default = plans["prod"]
    (pipeline,) = default.of_type(PIPELINE)
    flow = role_documents(default.resources, pipeline.inputs["roleArn"])
    assert not iam_allows(flow, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{keys.constraints}")
    assert not iam_allows(flow, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/batch/output/x")


def test_job_and_pipeline_roles_are_least_privilege(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    bucket = f"arn:aws:s3:::{BUCKET}"
    job = role_documents(plan.resources, batch_model(plan)["executionRoleArn"])
    assert iam_allows(job, "s3:GetObject", f"{bucket}/batch/input/part-1.csv")
    assert iam_allows(job, "s3:PutObject", f"{bucket}/batch/output/2026/predictions/a.out")
    assert iam_allows(job, "s3:GetObject", f"{bucket}/models/current/model.tar.gz")
    assert not iam_allows(job, "s3:PutObject", f"{bucket}/batch/input/part-1.csv")
    assert not iam_allows(job, "s3:PutObject", f"{bucket}/models/current/model.tar.gz")
    assert not iam_allows(job, "s3:GetObject", f"{bucket}/capture/x.jsonl")
    assert iam_allows(job, "s3:ListBucket", bucket, {"s3:prefix": "batch/input/"})
    assert not iam_allows(job, "s3:ListBucket", bucket, {"s3:prefix": "capture/"})
    (pipeline,) = plan.of_type(PIPELINE)
    flow = role_documents(plan.resources, pipeline.inputs["roleArn"])
    job_role = batch_model(plan)["executionRoleArn"]
    sm = "arn:aws:sagemaker:eu-west-1:123456789012"
    passed = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert iam_allows(flow, "iam:PassRole", job_role, passed)
    assert not iam_allows(
        flow, "iam:PassRole", job_role, {"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not iam_allows(
        flow, "iam:PassRole", "arn:aws:iam::123456789012:role/mlship-prod-deploy", passed
    )
    assert iam_allows(flow, "sagemaker:CreateTransformJob", f"{sm}:transform-job/pipelines-x")
    assert not iam_allows(flow, "sagemaker:CreateEndpoint", f"{sm}:endpoint/mlship-prod-endpoint")
    assert not iam_allows(flow, "s3:PutObject", f"{bucket}/batch/output/x")


def test_failed_or_stopped_runs_reach_the_alert_topic(plans: dict[str, StackPlan]) -> None:
    plan = plans["prod"]
    (rule,) = [
        r
        for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")
        if r.inputs["name"] == "mlship-prod-batch-scoring-status"
    ]
    (target,) = [
        t
        for t in plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["rule"] == rule.inputs["name"]
    ]
    (topic,) = plan.of_type("aws:sns/topic:Topic")
    assert target.inputs["arn"] == "arn:aws:sns:eu-west-1:123456789012:mlship-prod-alerts"
    assert topic.inputs["name"] == "mlship-prod-alerts"
    pattern = json.loads(rule.inputs["eventPattern"])
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/mlship-prod-batch-scoring"

    def event(status: str, pipeline: str = arn) -> dict[str, Any]:
        # "SageMaker Model Building Pipeline Execution Status Change" as EventBridge delivers it.
        return {
            "version": "0",
            "source": "aws.sagemaker",
            "detail-type": PIPELINE_STATUS_EVENT,
            "account": "123456789012",
            "region": "eu-west-1",
            "resources": [f"{pipeline}/execution/abc123"],
            "detail": {
                "pipelineArn": pipeline,
                "pipelineExecutionArn": f"{pipeline}/execution/abc123",
                "currentPipelineExecutionStatus": status,
                "previousPipelineExecutionStatus": "Executing",
            },
        }

    assert event_pattern_matches(pattern, event("Failed"))
    assert event_pattern_matches(pattern, event("Stopped"))
    assert not event_pattern_matches(pattern, event("Succeeded"))
    assert not event_pattern_matches(pattern, event("Failed", arn.replace("batch", "train")))
    assert set(target.inputs["inputTransformer"]["inputPaths"].values()) == {
        "$.detail.currentPipelineExecutionStatus",
        "$.detail.pipelineExecutionArn",
    }


def test_batch_scoring_is_off_unless_scheduled(plans: dict[str, StackPlan]) -> None:
    for stack in ("dev", "eks"):
        assert plans[stack].of_type(PIPELINE) == []
        assert plans[stack].of_type(SCHEDULE) == []
        assert "batchPipelineName" not in plans[stack].outputs
        assert "batchBaselinePrefix" not in plans[stack].outputs
    assert plans["prod"].outputs["batchPipelineName"] == "mlship-prod-batch-scoring"


@pytest.mark.parametrize(
    "expression", ["rate(1 day)", "rate(6 hours)", "cron(0 2 * * ? *)", "cron(15 3 ? * MON-FRI *)"]
)
def test_scheduler_expressions_are_accepted(expression: str) -> None:
    assert check_schedule_expression(expression, "batchSchedule") == expression


@pytest.mark.parametrize(
    ("expression", "hint"),
    [
        ("rate(1 days)", "singular unit for 1"),
        ("rate(2 day)", "plural otherwise"),
        ("rate(0 hours)", "at least 1"),
        ("cron(0 2 * * * *)", "exactly one of day-of-month"),
        ("cron(0 2 * *)", "give an EventBridge Scheduler expression"),
        ("0 2 * * *", "give an EventBridge Scheduler expression"),
    ],
)
def test_bad_scheduler_expressions_name_the_key_and_the_fix(expression: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=rf"^mlship:batchSchedule is .*{hint}"):
        check_schedule_expression(expression, "batchSchedule")


BASE = {
    "mlship:environment": "dev",
    "mlship:imageTag": "abc123",
    "mlship:githubRepository": "o/r",
    "mlship:batchSchedule": "rate(1 day)",
}


def _parse(**extra: str) -> StackConfig:
    raw = {k.split(":", 1)[1]: v for k, v in {**BASE, **extra}.items()}
    return StackConfig.parse(raw, project="mlship", stack="dev", region="eu-west-1")


def test_batch_config_refuses_overlapping_prefixes_and_non_sagemaker_types() -> None:
    with pytest.raises(ConfigError, match=r"^mlship:batchOutputPrefix .* overlaps"):
        _parse(**{"mlship:batchOutputPrefix": "batch/input/scores/"})
    with pytest.raises(ConfigError, match=r"^mlship:batchInputPrefix is '/in/'"):
        _parse(**{"mlship:batchInputPrefix": "/in/"})
    # Each API takes its own list of types (the API reference's TransformInstanceType and
    # ProcessingInstanceType, botocore's model): a typo, or a type of the other list, would
    # pass `pulumi up` and fail every scheduled run.
    for key, value, request, closest in (
        ("batchInstanceType", "m5.large", "CreateTransformJob", "ml.m5.large"),
        ("batchInstanceType", "ml.m5.xlarg", "CreateTransformJob", "ml.m5.xlarge"),
        ("batchInstanceType", "ml.t3.medium", "CreateTransformJob", ""),
        ("batchCheckInstanceType", "ml.c6i.large", "CreateProcessingJob", "ml.c6i.xlarge"),
    ):
        with pytest.raises(
            ConfigError,
            match=rf"^mlship:{key} is '{value}', which SageMaker's {request} "
            rf"does not take \(.*{re.escape(closest)}.*\)\. Use one of the \d+ types",
        ):
            _parse(**{f"mlship:{key}": value})
    with pytest.raises(ConfigError, match=r"^mlship:batchContentType is 'text/plain'"):
        _parse(**{"mlship:batchContentType": "text/plain"})
    with pytest.raises(ConfigError, match=r"^mlship:batchInputCheck is 'deequ': use one of"):
        _parse(**{"mlship:batchInputCheck": "deequ"})
    with pytest.raises(ConfigError, match=r"^mlship:batchCompression is 'gzip': use one of"):
        _parse(**{"mlship:batchCompression": "gzip"})
    # Model Monitor's analyzer reads the files as stored; how it reads gzip is not documented.
    with pytest.raises(ConfigError, match=r"^mlship:batchCompression is 'Gzip': with .*mlship"):
        _parse(**{"mlship:batchCompression": "Gzip", "mlship:batchInputCheck": "model-monitor"})
    # Model Monitor's check reads headerless CSV (core/baseline.py): JSON Lines would stop
    # every scheduled run there; mlship's reads JSON Lines as the service does.
    jsonlines = {"mlship:batchContentType": "application/jsonlines"}
    with pytest.raises(ConfigError, match=r"^mlship:batchContentType is 'application/json"):
        _parse(**jsonlines, **{"mlship:batchInputCheck": "model-monitor"})
    # Identifier columns are CSV columns (a JSON filter picks attributes, not positions), and
    # Model Monitor's analyzer would profile them against a baseline of the features alone.
    with pytest.raises(ConfigError, match=r"^mlship:batchIdColumns 1 needs text/csv input"):
        _parse(**jsonlines, **{"mlship:batchIdColumns": "1"})
    with pytest.raises(ConfigError, match=r"^mlship:batchIdColumns is 1: with .*model-monitor"):
        _parse(**{"mlship:batchIdColumns": "1", "mlship:batchInputCheck": "model-monitor"})
    # A features attribute is a JSON Lines attribute, named as JSONPath's dot notation takes
    # it, and not the one the job writes each answer to.
    with pytest.raises(ConfigError, match=r"^mlship:batchFeaturesAttribute 'x' needs appl"):
        _parse(**{"mlship:batchFeaturesAttribute": "x"})
    for name in ("1st", "a.b", "SageMakerOutput", "x" * 62):
        with pytest.raises(ConfigError, match=r"^mlship:batchFeaturesAttribute is '"):
            _parse(**jsonlines, **{"mlship:batchFeaturesAttribute": name})
    scored = _parse(**jsonlines).batch
    assert scored is not None and scored.content_type == "application/jsonlines"
    batch = _parse().batch
    assert batch is not None and batch.content_type == "text/csv"
    assert batch.input_check == "mlship"
    assert _parse(**{"mlship:batchSchedule": ""}).batch is None
