"""SageMaker training and transform launchers: AWS's request constraints, then moto's server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import boto3
import pytest

from cli.main import main as mlship
from core.errors import ConfigError, MlshipError
from pipelines.sagemaker.launch import (
    JobError,
    JobFailed,
    JobTimeout,
    start_training_job,
    start_transform_job,
    wait_for,
    wait_training_job,
    wait_transform_job,
)
from pipelines.sagemaker.requests import (
    TrainingJobSpec,
    TransformJobSpec,
    default_job_name,
    parse_pairs,
    training_job_request,
    transform_job_request,
    transform_model_request,
)
from tests.aws.aws_model import request_problems
from tests.aws.conftest import IMAGE_URI, ROLE_ARN

TRAINING = TrainingJobSpec(
    name="mlship-train-20261126-120000",
    image_uri=IMAGE_URI,
    role_arn=ROLE_ARN,
    data_uri="s3://mlship-dev-artifacts/data/train/",
    output_uri="s3://mlship-dev-artifacts/training/",
    hyperparameters={"model": "logistic", "C": "1.0"},
    kms_key_id="arn:aws:kms:us-east-1:123456789012:key/0b9c7c1e-8a7e-4c3a-9a55-000000000001",
    tags={"project": "mlship"},
)
TRANSFORM = TransformJobSpec(
    name="mlship-transform-20261126-120000",
    image_uri=IMAGE_URI,
    role_arn=ROLE_ARN,
    model_data_uri="s3://mlship-dev-artifacts/models/v1/model.tar.gz",
    input_uri="s3://mlship-dev-artifacts/batch/in/",
    output_uri="s3://mlship-dev-artifacts/batch/out/",
    tags={"project": "mlship"},
)


def test_training_request_satisfies_aws_constraints() -> None:
    request = training_job_request(TRAINING)
    assert request_problems("sagemaker", "CreateTrainingJob", request) == []
    # What the container contract relies on: the `train` channel, File mode, no network.
    assert request["InputDataConfig"][0]["ChannelName"] == "train"
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE_URI,
        "TrainingInputMode": "File",
    }
    assert request["EnableNetworkIsolation"] is True
    assert request["OutputDataConfig"]["KmsKeyId"] == TRAINING.kms_key_id
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == TRAINING.kms_key_id
    assert request["HyperParameters"] == {"model": "logistic", "C": "1.0"}


def test_transform_requests_satisfy_aws_constraints() -> None:
    model = transform_model_request(TRANSFORM)
    job = transform_job_request(TRANSFORM)
    assert request_problems("sagemaker", "CreateModel", model) == []
    assert request_problems("sagemaker", "CreateTransformJob", job) == []
    assert model["PrimaryContainer"]["ModelDataUrl"] == TRANSFORM.model_data_uri
    assert model["EnableNetworkIsolation"] is True
    # The service refuses bodies over 6 MiB, so SageMaker must send less.
    assert job["MaxPayloadInMB"] <= 6
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["CompressionType"] == "None"
    gzipped = transform_job_request(replace(TRANSFORM, compression="Gzip"))
    assert request_problems("sagemaker", "CreateTransformJob", gzipped) == []
    assert gzipped["TransformInput"]["CompressionType"] == "Gzip"
    with pytest.raises(ConfigError, match=r"--compression 'gzip' is not a CompressionType"):
        transform_job_request(replace(TRANSFORM, compression="gzip"))
    # MaxPayloadInMB: "the value of (MaxConcurrentTransforms * MaxPayloadInMB) also cannot
    # exceed 100 MB" (CreateTransformJob API reference); botocore's model cannot see it.
    within = transform_job_request(replace(TRANSFORM, max_concurrent=16, max_payload_mb=6))
    assert request_problems("sagemaker", "CreateTransformJob", within) == []
    past = replace(TRANSFORM, max_concurrent=16, max_payload_mb=7)
    too_much = dict(within, MaxConcurrentTransforms=16, MaxPayloadInMB=7)
    assert request_problems("sagemaker", "CreateTransformJob", too_much) == []  # model's blind
    with pytest.raises(ConfigError, match=r"is 112 MB in flight per instance; .* at most 100 MB"):
        transform_job_request(past)
    assert "DataProcessing" not in job  # no identifier columns: the job's default processing


def test_identifier_columns_are_a_csv_data_processing_request() -> None:
    """``--id-columns`` as "Associate Prediction Results with Input Records" documents it for
    CSV: "$[N:]" for the model, the input line joined before each answer."""
    job = transform_job_request(replace(TRANSFORM, id_columns=1))
    assert request_problems("sagemaker", "CreateTransformJob", job) == []
    assert job["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    jsonlines = replace(TRANSFORM, id_columns=1, content_type="application/jsonlines")
    with pytest.raises(ConfigError, match=r"^--id-columns 1 needs text/csv input"):
        transform_job_request(jsonlines)
    with pytest.raises(ConfigError, match=r"^--id-columns 101 must be between 0 and 100"):
        transform_job_request(replace(TRANSFORM, id_columns=101))
    # JSON Lines: the guide's JSON example, features under one attribute
    nested = replace(TRANSFORM, content_type="application/jsonlines", features_attribute="x_1")
    job = transform_job_request(nested)
    assert request_problems("sagemaker", "CreateTransformJob", job) == []
    assert job["DataProcessing"] == {
        "InputFilter": "$.x_1",
        "JoinSource": "Input",
        "OutputFilter": "$",
    }
    with pytest.raises(ConfigError, match=r"^--features-attribute 'x_1' needs application/json"):
        transform_job_request(replace(nested, content_type="text/csv"))


def test_the_constraint_checker_catches_what_moto_accepts() -> None:
    # Guard for the two tests above: the checker must see AWS's limits.
    bad = dict(training_job_request(TRAINING), TrainingJobName="under_score")
    assert any(
        "TrainingJobName" in p for p in request_problems("sagemaker", "CreateTrainingJob", bad)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "under_score"}, "not a valid SageMaker name"),
        ({"name": "x" * 64}, "not a valid SageMaker name"),
        ({"image_uri": "mlship:latest"}, "not an ECR image URI"),
        ({"role_arn": "mlship-execution"}, "not an IAM role ARN"),
        (
            {"instance_type": "m5.large"},
            "--instance-type is 'm5.large', which SageMaker's CreateTrainingJob does not take",
        ),
        ({"data_uri": "/local/data"}, "not an s3:// URI"),
        ({"max_runtime_s": 0}, "--max-runtime"),
    ],
)
def test_training_request_rejects_what_aws_would(change: dict[str, Any], message: str) -> None:
    spec = TrainingJobSpec(**{**TRAINING.__dict__, **change})
    with pytest.raises(MlshipError, match=message):
        training_job_request(spec)


def test_default_job_name_is_valid_and_bounded() -> None:
    name = default_job_name("x" * 80, clock=lambda: 0.0)
    assert len(name) <= 63
    assert name.endswith("-19700101-000000")
    assert (
        request_problems(
            "sagemaker",
            "CreateTrainingJob",
            dict(training_job_request(TRAINING), TrainingJobName=name),
        )
        == []
    )


def test_parse_pairs() -> None:
    assert parse_pairs(["a=1", "b=x=y"], "--hp") == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="--hp 'nope' must be written key=value"):
        parse_pairs(["nope"], "--hp")


def test_training_job_round_trip_in_moto(aws: str) -> None:
    client = boto3.client("sagemaker")
    arn = start_training_job(client, TRAINING)
    assert arn.endswith(f":training-job/{TRAINING.name}")
    described = client.describe_training_job(TrainingJobName=TRAINING.name)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    assert described["RoleArn"] == ROLE_ARN
    artifact = wait_training_job(client, TRAINING.name, poll_s=0.1, timeout_s=5)
    assert artifact.startswith("s3://mlship-dev-artifacts/training/")
    assert artifact.endswith("model.tar.gz")


def test_transform_job_round_trip_in_moto(aws: str) -> None:
    client = boto3.client("sagemaker")
    arn = start_transform_job(client, TRANSFORM)
    assert arn.endswith(f":transform-job/{TRANSFORM.name}")
    model = client.describe_model(ModelName=TRANSFORM.name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == TRANSFORM.model_data_uri
    out = wait_transform_job(client, TRANSFORM.name, poll_s=0.1, timeout_s=5)
    assert out == TRANSFORM.output_uri


# Each API takes its own list of instance types (API reference, "Valid Values" of
# TransformInstanceType): ml.t3.medium runs processing and training jobs, not transform jobs.
@pytest.mark.parametrize(
    ("instance_type", "message"),
    [
        ("ml.m5.xlarg", r"closest it takes: ml\.m5\.xlarge"),
        ("ml.t3.medium", "CreateTransformJob does not take"),
    ],
)
def test_a_transform_instance_type_the_api_refuses_creates_nothing(
    aws: str, instance_type: str, message: str
) -> None:
    # The model is created before the job: a type only CreateTransformJob would refuse must be
    # caught before either request, or a refused launch leaves a model behind.
    client = boto3.client("sagemaker")
    with pytest.raises(ConfigError, match=message):
        start_transform_job(client, replace(TRANSFORM, instance_type=instance_type))
    assert client.list_models()["Models"] == []
    assert client.list_transform_jobs()["TransformJobSummaries"] == []


def test_waiting_on_a_missing_job_is_a_named_error(aws: str) -> None:
    client = boto3.client("sagemaker")
    with pytest.raises(JobError, match="Could not describe training job mlship-nope"):
        wait_training_job(client, "mlship-nope", poll_s=0.1, timeout_s=1)


def test_cli_sagemaker_train_prints_artifact(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = mlship(
        ["sagemaker-train", "--image", IMAGE_URI, "--role", ROLE_ARN,
         "--data", "s3://b/data/", "--output", "s3://b/training/",
         "--job-name", "mlship-cli-train", "--poll-seconds", "0.1", "--wait-minutes", "0.1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training job mlship-cli-train: Completed" in out
    assert out.strip().splitlines()[-1].startswith("s3://b/training/")


def test_cli_sagemaker_transform_bad_model_data(
    aws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mlship(
        ["sagemaker-transform", "--image", IMAGE_URI, "--role", ROLE_ARN,
         "--model-data", "s3://b/models/v1/model.skops", "--input", "s3://b/in/",
         "--output", "s3://b/out/"]
    )  # fmt: skip
    assert code == 1
    assert "must be a model.tar.gz" in capsys.readouterr().err


class FakeClock:
    """A clock the waiter advances by sleeping: bounded polling without real waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _statuses(*statuses: str, reason: str | None = None) -> Any:
    it = iter(statuses)

    def describe() -> Mapping[str, Any]:
        status = next(it)
        return {"Status": status, **({"FailureReason": reason} if reason else {})}

    return describe


def test_wait_polls_until_completed() -> None:
    clock = FakeClock()
    done = wait_for(
        _statuses("InProgress", "InProgress", "Completed"), "Status", "job",
        poll_s=10, timeout_s=100, sleep=clock.sleep, clock=clock.time,
    )  # fmt: skip
    assert done["Status"] == "Completed"
    assert clock.sleeps == [10, 10]


def test_wait_reports_failure_reason() -> None:
    clock = FakeClock()
    with pytest.raises(JobFailed, match="job ended Failed: AlgorithmError: exit 1"):
        wait_for(
            _statuses("InProgress", "Failed", reason="AlgorithmError: exit 1"), "Status", "job",
            poll_s=1, timeout_s=100, sleep=clock.sleep, clock=clock.time,
        )  # fmt: skip


def test_wait_is_bounded() -> None:
    clock = FakeClock()
    with pytest.raises(JobTimeout, match="still InProgress after 25 s"):
        wait_for(
            _statuses(*["InProgress"] * 100), "Status", "job",
            poll_s=10, timeout_s=25, sleep=clock.sleep, clock=clock.time,
        )  # fmt: skip
    assert clock.sleeps == [10, 10, 5]


SPOT = TrainingJobSpec(**{**TRAINING.__dict__, "spot": True, "max_runtime_s": 1800})


def test_spot_training_request_satisfies_aws_constraints() -> None:
    request = training_job_request(SPOT)
    assert request_problems("sagemaker", "CreateTrainingJob", request) == []
    assert request["EnableManagedSpotTraining"] is True
    # "Managed Spot Training": MaxWaitTimeInSeconds >= MaxRuntimeInSeconds, checkpoints in S3
    # mirrored at /opt/ml/checkpoints.
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 3600,
    }
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://mlship-dev-artifacts/training/checkpoints/{SPOT.name}",
        "LocalPath": "/opt/ml/checkpoints",
    }
    on_demand = training_job_request(TRAINING)
    assert "EnableManagedSpotTraining" not in on_demand and "CheckpointConfig" not in on_demand
    assert on_demand["StoppingCondition"] == {"MaxRuntimeInSeconds": TRAINING.max_runtime_s}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spot": True, "max_runtime_s": 3600, "max_wait_s": 600}, "must be at least"),
        ({"spot": True, "max_wait_s": 29 * 24 * 3600}, "at most 28 days"),
        ({"max_wait_s": 7200}, "spot training only"),
        ({"checkpoint_uri": "s3://b/ckpt"}, "spot training only"),
        ({"spot": True, "checkpoint_uri": "/local/ckpt"}, "not an s3:// URI"),
    ],
)
def test_spot_request_rejects_what_aws_would(change: dict[str, Any], message: str) -> None:
    spec = TrainingJobSpec(**{**TRAINING.__dict__, **change})
    with pytest.raises(MlshipError, match=message):
        training_job_request(spec)


def test_the_checker_sees_a_wait_shorter_than_the_runtime_is_still_an_int() -> None:
    # botocore's model only checks types and ranges: the >= rule is ours (tested above).
    request = dict(training_job_request(SPOT), StoppingCondition={"MaxWaitTimeInSeconds": "x"})
    assert request_problems("sagemaker", "CreateTrainingJob", request)


def _versioned_data(bucket: str = "mlship-dev-artifacts") -> tuple[Any, str]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=bucket, Key="data/bc.csv", Body=b"a,target\n1,0\n")["VersionId"]
    return s3, version


def test_train_on_sagemaker_passes_the_data_version_it_read(aws: str) -> None:
    from pipelines.sagemaker.launch import train_on_sagemaker

    _, version = _versioned_data()
    spec = TrainingJobSpec(
        **{**TRAINING.__dict__, "data_uri": "s3://mlship-dev-artifacts/data/bc.csv"}
    )
    client = boto3.client("sagemaker")
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(dict(params)),
    )
    outcome = train_on_sagemaker(client, spec, poll_s=0.1, timeout_s=5)
    assert outcome.data_version == f"s3:{version}"
    # moto does not keep a training job's Environment: check the request that was sent.
    (request,) = sent
    assert request["Environment"] == {"MLSHIP_DATA_VERSION": f"s3:{version}"}
    assert request_problems("sagemaker", "CreateTrainingJob", request) == []
    assert outcome.artifact.endswith(f"{spec.name}/output/model.tar.gz")
    described = client.describe_training_job(TrainingJobName=spec.name)
    assert described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == spec.data_uri


def test_train_on_sagemaker_refuses_data_replaced_during_the_job(aws: str) -> None:
    from pipelines.sagemaker.launch import train_on_sagemaker

    s3, _ = _versioned_data()
    client = boto3.client("sagemaker")
    describe = client.describe_training_job

    def describe_after_an_upload(**kwargs: Any) -> Any:
        s3.put_object(Bucket="mlship-dev-artifacts", Key="data/bc.csv", Body=b"a,target\n2,1\n")
        return describe(**kwargs)

    client.describe_training_job = describe_after_an_upload  # type: ignore[method-assign]
    spec = TrainingJobSpec(
        **{**TRAINING.__dict__, "data_uri": "s3://mlship-dev-artifacts/data/bc.csv"}
    )
    with pytest.raises(JobError, match=r"was replaced while training job .* ran"):
        train_on_sagemaker(client, spec, poll_s=0.1, timeout_s=5)
