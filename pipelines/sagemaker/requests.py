"""SageMaker training and batch-transform jobs, launched with boto3 and waited on with bounds.

The sagemaker SDK would add hundreds of megabytes for two API calls, so requests are built here
as plain dictionaries (pure functions, checked in the tests against botocore's service model)
and sent with a ``sagemaker`` client from the standard AWS configuration.

Training runs our serving image with SageMaker's ``train`` argument: the data channel ``train``
is mounted at ``/opt/ml/input/data/train/``, hyperparameters are in
``/opt/ml/input/config/hyperparameters.json``, and whatever the job writes to ``/opt/ml/model/``
(the bundle) is packed by SageMaker into ``<output>/<job>/output/model.tar.gz``: the same
layout ``mlship publish`` uploads, so the result can be deployed as it is.

Batch transform creates a SageMaker model from the image and a bundle's ``model.tar.gz`` and
sends it headerless CSV lines (``/invocations`` accepts ``text/csv``), one output line per row.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError
from core.instances import TRAINING, TRANSFORM, InstanceApi, check_instance_type
from core.s3 import parse_s3_uri
from core.transform import (
    COMPRESSIONS,
    DEFAULT_PAYLOAD_MB,
    MAX_IN_FLIGHT_MB,
    PAYLOAD_MB_RANGE,
    check_features_attribute,
    check_id_columns,
    container_environment,
    data_processing,
)

# AWS's own constraints (CreateTrainingJob / CreateTransformJob / CreateModel).
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
IMAGE_RE = re.compile(r"^\S+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+[:@]\S+$")
TRANSFORM_CONTENT_TYPES = ("text/csv", "application/jsonlines")


def _check_name(name: str, what: str) -> None:
    if not JOB_NAME_RE.match(name):
        raise ConfigError(
            f"{what} {name!r} is not a valid SageMaker name: 1-63 letters, digits and hyphens, "
            "starting with a letter or digit."
        )


def _check_common(
    image_uri: str, role_arn: str, instance_type: str, count: int, api: InstanceApi
) -> None:
    if not IMAGE_RE.match(image_uri):
        raise ConfigError(
            f"--image {image_uri!r} is not an ECR image URI with a tag or digest "
            "(<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>); use the stack's "
            "repositoryUrl and the git SHA tag."
        )
    if not ROLE_ARN_RE.match(role_arn):
        raise ConfigError(
            f"--role {role_arn!r} is not an IAM role ARN; use the stack's executionRoleArn."
        )
    check_instance_type(instance_type, "--instance-type", api)
    if not 1 <= count <= 100:
        raise ConfigError(f"--instance-count {count} must be between 1 and 100.")


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


@dataclass(frozen=True)
class TrainingJobSpec:
    """A training job of our image.

    Attributes:
        name: Job name (unique in the account and region, 1-63 characters).
        image_uri: ECR image with the ``train`` entrypoint, by tag or digest.
        role_arn: SageMaker execution role (reads the data, writes the output, pulls the image).
        data_uri: ``s3://`` prefix of the training data (channel ``train``).
        output_uri: ``s3://`` prefix the model artifact is written under.
        instance_type: ``ml.*`` instance type.
        instance_count: Instances (1 for scikit-learn).
        volume_gb: ML storage volume per instance.
        max_runtime_s: SageMaker stops the job after this long.
        hyperparameters: Passed to the container (string values only, AWS's rule).
        kms_key_id: KMS key for the output and the volume (None: the bucket's default).
        tags: Tags on the job.
        environment: The container's environment (lineage the isolated container cannot
            see: ``MLSHIP_DATA_VERSION``, ``MLSHIP_GIT_COMMIT``).
        spot: Managed spot training: cheaper, may be interrupted and resumed from checkpoints.
        max_wait_s: Spot only: the longest the job may take including waits for capacity
            (``MaxWaitTimeInSeconds``, at least ``max_runtime_s``; None: twice it).
        checkpoint_uri: Spot only: ``s3://`` prefix SageMaker syncs ``/opt/ml/checkpoints``
            with (None: ``<output_uri>/checkpoints/<name>``).
    """

    name: str
    image_uri: str
    role_arn: str
    data_uri: str
    output_uri: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_gb: int = 30
    max_runtime_s: int = 3600
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    kms_key_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    spot: bool = False
    max_wait_s: int | None = None
    checkpoint_uri: str | None = None


# Where SageMaker mirrors the checkpoint S3 prefix inside the container (CheckpointConfig's
# default LocalPath, "Use Checkpoints in Amazon SageMaker AI").
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# CreateTrainingJob: MaxRuntimeInSeconds and MaxWaitTimeInSeconds are at most 28 days (and
# MaxWaitTimeInSeconds must be >= MaxRuntimeInSeconds, "Managed Spot Training").
MAX_JOB_SECONDS = 28 * 24 * 3600


def training_job_request(spec: TrainingJobSpec) -> dict[str, Any]:
    """The CreateTrainingJob parameters for ``spec`` (validated; raises ConfigError)."""
    _check_name(spec.name, "Training job name")
    _check_common(spec.image_uri, spec.role_arn, spec.instance_type, spec.instance_count, TRAINING)
    parse_s3_uri(spec.data_uri)
    parse_s3_uri(spec.output_uri)
    if not 1 <= spec.volume_gb <= 16384:
        raise ConfigError(f"--volume-gb {spec.volume_gb} must be between 1 and 16384.")
    if not 1 <= spec.max_runtime_s <= MAX_JOB_SECONDS:
        raise ConfigError("--max-runtime must be between 1 second and 28 days.")
    output: dict[str, Any] = {"S3OutputPath": spec.output_uri}
    resources: dict[str, Any] = {
        "InstanceType": spec.instance_type,
        "InstanceCount": spec.instance_count,
        "VolumeSizeInGB": spec.volume_gb,
    }
    if spec.kms_key_id:
        output["KmsKeyId"] = spec.kms_key_id
        resources["VolumeKmsKeyId"] = spec.kms_key_id
    request: dict[str, Any] = {
        "TrainingJobName": spec.name,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": spec.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": spec.data_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": _stopping_condition(spec),
        # The container needs no network: data arrives through the channel, the bundle leaves
        # through /opt/ml/model. Isolation keeps a compromised dependency from calling out.
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    if spec.hyperparameters:
        request["HyperParameters"] = {str(k): str(v) for k, v in spec.hyperparameters.items()}
    if spec.environment:
        request["Environment"] = {str(k): str(v) for k, v in spec.environment.items()}
    if spec.spot:
        request["EnableManagedSpotTraining"] = True
        checkpoint = spec.checkpoint_uri or (
            f"{spec.output_uri.rstrip('/')}/checkpoints/{spec.name}"
        )
        parse_s3_uri(checkpoint)
        request["CheckpointConfig"] = {"S3Uri": checkpoint, "LocalPath": CHECKPOINT_LOCAL_PATH}
    if spec.tags:
        request["Tags"] = _tag_list(spec.tags)
    return request


def _stopping_condition(spec: TrainingJobSpec) -> dict[str, int]:
    """MaxRuntimeInSeconds, and for spot jobs MaxWaitTimeInSeconds (>= it, <= 28 days)."""
    condition = {"MaxRuntimeInSeconds": spec.max_runtime_s}
    if not spec.spot:
        if spec.max_wait_s is not None or spec.checkpoint_uri is not None:
            raise ConfigError(
                "--max-wait-minutes and --checkpoint apply to spot training only; add --spot "
                "(or set mlship:spotTraining) or drop them."
            )
        return condition
    wait = spec.max_wait_s if spec.max_wait_s is not None else 2 * spec.max_runtime_s
    wait = min(wait, MAX_JOB_SECONDS) if spec.max_wait_s is None else wait
    if not spec.max_runtime_s <= wait <= MAX_JOB_SECONDS:
        raise ConfigError(
            f"--max-wait-minutes ({wait} s) must be at least --max-runtime-minutes "
            f"({spec.max_runtime_s} s) and at most 28 days: SageMaker's MaxWaitTimeInSeconds "
            "covers the run and the waits for spot capacity."
        )
    condition["MaxWaitTimeInSeconds"] = wait
    return condition


@dataclass(frozen=True)
class TransformJobSpec:
    """A batch-transform job scoring headerless CSV with a bundle.

    Attributes:
        name: Job name; the SageMaker model created for it has the same name.
        image_uri: ECR serving image, by tag or digest.
        role_arn: SageMaker execution role.
        model_data_uri: ``s3://.../model.tar.gz`` of the bundle.
        input_uri: ``s3://`` prefix (or object) of CSV files, feature columns only, no header.
        output_uri: ``s3://`` prefix for the ``.out`` files (one line per input row).
        instance_type: ``ml.*`` instance type.
        instance_count: Instances.
        max_concurrent: Concurrent requests per instance (None: the container's
            ``/execution-parameters`` answer, one per server worker).
        max_payload_mb: Largest mini-batch SageMaker sends; the container accepts exactly it.
        content_type: ``text/csv`` or ``application/jsonlines`` in and out, one line per row.
        compression: ``None``, or ``Gzip`` when every input file is gzip-compressed
            (SageMaker decompresses each before splitting it).
        id_columns: Leading CSV columns that identify a record: left out of what the model
            gets, and each output line is its input line followed by the answer
            (:func:`core.transform.data_processing`).
        features_attribute: The attribute of each JSON Lines record that holds its features
            (its other attributes identify it): the model gets that attribute's value, and
            each output record is its input record with the answer under SageMakerOutput.
        kms_key_id: KMS key for the output (None: the bucket's default).
        tags: Tags on the model and the job.
    """

    name: str
    image_uri: str
    role_arn: str
    model_data_uri: str
    input_uri: str
    output_uri: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    max_concurrent: int | None = None
    max_payload_mb: int = DEFAULT_PAYLOAD_MB
    content_type: str = "text/csv"
    compression: str = "None"
    id_columns: int = 0
    features_attribute: str = ""
    kms_key_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def transform_model_request(spec: TransformJobSpec) -> dict[str, Any]:
    """The CreateModel parameters for the model a transform job uses."""
    _check_name(spec.name, "Transform job name")
    _check_common(spec.image_uri, spec.role_arn, spec.instance_type, spec.instance_count, TRANSFORM)
    _, key = parse_s3_uri(spec.model_data_uri)
    if not key.endswith(".tar.gz"):
        raise ConfigError(
            f"--model-data {spec.model_data_uri!r} must be a model.tar.gz (`mlship publish` "
            "prints its URI)."
        )
    request: dict[str, Any] = {
        "ModelName": spec.name,
        "PrimaryContainer": {
            "Image": spec.image_uri,
            "ModelDataUrl": spec.model_data_uri,
            "Environment": transform_environment(spec),
        },
        "ExecutionRoleArn": spec.role_arn,
        "EnableNetworkIsolation": True,
    }
    if spec.tags:
        request["Tags"] = _tag_list(spec.tags)
    return request


def transform_environment(spec: TransformJobSpec) -> dict[str, str]:
    """The serving container's settings in ``spec``'s job (:mod:`core.transform`): its body
    limit is the job's MaxPayloadInMB, so no mini-batch is refused for its size."""
    return container_environment(spec.max_payload_mb)


def transform_job_request(spec: TransformJobSpec) -> dict[str, Any]:
    """The CreateTransformJob parameters for ``spec`` (validated; raises ConfigError)."""
    _check_name(spec.name, "Transform job name")
    parse_s3_uri(spec.input_uri)
    parse_s3_uri(spec.output_uri)
    if spec.max_concurrent is not None and not 1 <= spec.max_concurrent <= 16:
        raise ConfigError(f"--max-concurrent {spec.max_concurrent} must be between 1 and 16.")
    low, high = PAYLOAD_MB_RANGE
    if not low <= spec.max_payload_mb <= high:
        raise ConfigError(
            f"--max-payload-mb {spec.max_payload_mb} must be between {low} and {high} "
            "(SageMaker's MaxPayloadInMB range)."
        )
    if (
        spec.max_concurrent is not None
        and spec.max_concurrent * spec.max_payload_mb > MAX_IN_FLIGHT_MB
    ):
        raise ConfigError(
            f"--max-concurrent {spec.max_concurrent} times --max-payload-mb {spec.max_payload_mb} "
            f"is {spec.max_concurrent * spec.max_payload_mb} MB in flight per instance; "
            f"CreateTransformJob allows at most {MAX_IN_FLIGHT_MB} MB. Lower one of them, or "
            "leave --max-concurrent unset (the container answers what fits)."
        )
    if spec.content_type not in TRANSFORM_CONTENT_TYPES:
        raise ConfigError(
            f"--content-type {spec.content_type!r} is not one the service reads line by line; "
            f"use {' or '.join(TRANSFORM_CONTENT_TYPES)}."
        )
    if spec.compression not in COMPRESSIONS:
        raise ConfigError(
            f"--compression {spec.compression!r} is not a CompressionType SageMaker takes; use "
            f"{' or '.join(COMPRESSIONS)} (Gzip when every input file is gzip-compressed)."
        )
    check_id_columns(spec.id_columns, spec.content_type)
    check_features_attribute(spec.features_attribute, spec.content_type)
    output: dict[str, Any] = {
        "S3OutputPath": spec.output_uri,
        "Accept": spec.content_type,
        "AssembleWith": "Line",
    }
    if spec.kms_key_id:
        output["KmsKeyId"] = spec.kms_key_id
    request: dict[str, Any] = {
        "TransformJobName": spec.name,
        "ModelName": spec.name,
        "MaxPayloadInMB": spec.max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": spec.input_uri}},
            "ContentType": spec.content_type,
            "CompressionType": spec.compression,
            "SplitType": "Line",
        },
        "TransformOutput": output,
        "TransformResources": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
        },
    }
    if spec.max_concurrent is not None:  # else SageMaker asks GET /execution-parameters
        request["MaxConcurrentTransforms"] = spec.max_concurrent
    processing = data_processing(spec.id_columns, spec.features_attribute)
    if processing is not None:
        request["DataProcessing"] = processing
    if spec.tags:
        request["Tags"] = _tag_list(spec.tags)
    return request


def default_job_name(prefix: str, clock: Callable[[], float] = time.time) -> str:
    """``<prefix>-<yyyymmdd-hhmmss>``, truncated to SageMaker's 63 characters."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
    return f"{prefix[: 62 - len(stamp)]}-{stamp}"


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` to ``{"a": "1", "b": "x"}``; ConfigError names a malformed pair."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {pair!r} must be written key=value.")
        result[key] = value
    return result
