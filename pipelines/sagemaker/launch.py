"""Start SageMaker training and transform jobs with boto3, and wait for them with bounds.

Requests come from :mod:`pipelines.sagemaker.requests`; a wait polls the job's Describe call
until it is terminal or the time is up, reports each status change, and surfaces SageMaker's
``FailureReason`` as the error.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, MlshipError
from core.files import data_format
from core.s3 import object_version, parse_s3_uri
from pipelines.sagemaker.requests import (
    TrainingJobSpec,
    TransformJobSpec,
    training_job_request,
    transform_job_request,
    transform_model_request,
)

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sagemaker import SageMakerClient


class JobError(MlshipError):
    """A SageMaker job could not be started, failed, or did not finish in time."""


class JobFailed(JobError):
    """The job ended Failed or Stopped."""


class JobTimeout(JobError):
    """The job was still running when the wait ended (it keeps running in SageMaker)."""


def _api_error(e: Exception, action: str) -> JobError:
    response: Any = getattr(e, "response", None)
    err = response.get("Error", {}) if isinstance(response, dict) else {}
    detail = f"{err.get('Code', type(e).__name__)}: {err.get('Message', e)}"
    hint = (
        " Your role may not call this; it needs sagemaker:CreateTrainingJob, "
        "sagemaker:CreateModel, sagemaker:CreateTransformJob, the matching Describe* and "
        "iam:PassRole on the execution role."
        if "AccessDenied" in detail
        else ""
    )
    return JobError(f"Could not {action} ({detail}).{hint}")


def start_training_job(client: SageMakerClient, spec: TrainingJobSpec) -> str:
    """Create the training job; returns its ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    request = training_job_request(spec)
    try:
        return client.create_training_job(**request)["TrainingJobArn"]
    except (BotoCoreError, ClientError) as e:
        raise _api_error(e, f"start training job {spec.name}") from e


def start_transform_job(client: SageMakerClient, spec: TransformJobSpec) -> str:
    """Create the model (if it does not exist yet) and the transform job; returns the job ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    model = transform_model_request(spec)
    job = transform_job_request(spec)
    try:
        client.create_model(**model)
    except ClientError as e:
        message = str(e.response.get("Error", {}).get("Message", ""))
        if "already exist" not in message.lower():
            raise _api_error(e, f"create model {spec.name}") from e
    except BotoCoreError as e:
        raise _api_error(e, f"create model {spec.name}") from e
    try:
        return client.create_transform_job(**job)["TransformJobArn"]
    except (BotoCoreError, ClientError) as e:
        raise _api_error(e, f"start transform job {spec.name}") from e


def wait_for(
    describe: Callable[[], Mapping[str, Any]],
    status_key: str,
    what: str,
    *,
    poll_s: float,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: Callable[[str], None] | None = None,
) -> Mapping[str, Any]:
    """Poll ``describe`` until its ``status_key`` is terminal, at most ``timeout_s`` seconds.

    Returns:
        The last description, when the status is ``Completed``.

    Raises:
        JobFailed: on ``Failed`` or ``Stopped``, with SageMaker's FailureReason.
        JobTimeout: when the wait ends first (the job itself keeps running).
    """
    if poll_s <= 0 or timeout_s <= 0:
        raise ConfigError("Polling interval and timeout must be positive.")
    deadline = clock() + timeout_s
    last = None
    while True:
        description = describe()
        status = str(description[status_key])
        if status != last and on_status is not None:
            on_status(status)
        last = status
        if status == "Completed":
            return description
        if status in ("Failed", "Stopped"):
            reason = description.get("FailureReason", "no reason given")
            raise JobFailed(
                f"{what} ended {status}: {reason}. Its CloudWatch logs are under "
                "/aws/sagemaker/TrainingJobs or /aws/sagemaker/TransformJobs."
            )
        remaining = deadline - clock()
        if remaining <= 0:
            raise JobTimeout(
                f"{what} is still {status} after {timeout_s:g} s; it keeps running in "
                "SageMaker. Wait longer (--wait-minutes) or stop it in the console."
            )
        sleep(min(poll_s, remaining))


def _wait_job(
    client: SageMakerClient, kind: str, name: str, poll_s: float, timeout_s: float
) -> Mapping[str, Any]:
    """Wait for a ``Training`` or ``Transform`` job through its Describe call."""
    from botocore.exceptions import BotoCoreError, ClientError

    describe_job = getattr(client, f"describe_{kind.lower()}_job")

    def describe() -> Mapping[str, Any]:
        try:
            description: Mapping[str, Any] = describe_job(**{f"{kind}JobName": name})
        except (BotoCoreError, ClientError) as e:
            raise _api_error(e, f"describe {kind.lower()} job {name}") from e
        return description

    return wait_for(
        describe,
        f"{kind}JobStatus",
        f"{kind} job {name}",
        poll_s=poll_s,
        timeout_s=timeout_s,
        on_status=lambda s: print(f"{kind.lower()} job {name}: {s}", flush=True),
    )


def wait_training_job(
    client: SageMakerClient, name: str, *, poll_s: float = 30.0, timeout_s: float = 7200.0
) -> str:
    """Wait for a training job; returns the S3 URI of its ``model.tar.gz``."""
    done = _wait_job(client, "Training", name, poll_s, timeout_s)
    artifact = done.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not artifact:
        raise JobError(f"Training job {name} completed without a model artifact.")
    return str(artifact)


def wait_transform_job(
    client: SageMakerClient, name: str, *, poll_s: float = 30.0, timeout_s: float = 7200.0
) -> str:
    """Wait for a transform job; returns its output S3 prefix."""
    done = _wait_job(client, "Transform", name, poll_s, timeout_s)
    return str(done["TransformOutput"]["S3OutputPath"])


@dataclasses.dataclass(frozen=True)
class TrainingOutcome:
    """A completed training job: its bundle (``model.tar.gz``) and the data version it read."""

    artifact: str
    data_version: str | None


def train_on_sagemaker(
    client: SageMakerClient,
    spec: TrainingJobSpec,
    *,
    poll_s: float,
    timeout_s: float,
    s3: S3Client | None = None,
) -> TrainingOutcome:
    """Run a training job on one S3 data object and record exactly which version it read.

    When ``spec.data_uri`` names one CSV or Parquet object, its current S3 version id is read
    before the job starts and passed to the container (``MLSHIP_DATA_VERSION``, recorded in the
    manifest and the MLflow run), and read again when the job has completed: if the object
    changed meanwhile, SageMaker may have copied the newer one, so the run is refused. A prefix
    is passed as it is (the container records the file's SHA-256).

    Raises:
        JobError: the job could not start, failed (SageMaker's FailureReason), timed out, or
            the data changed under it.
    """
    _, key = parse_s3_uri(spec.data_uri)
    version = None
    if data_format(key) is not None:
        version_id = object_version(spec.data_uri, s3)
        if version_id is not None:
            version = f"s3:{version_id}"
            spec = dataclasses.replace(
                spec, environment={**spec.environment, "MLSHIP_DATA_VERSION": version}
            )
    start_training_job(client, spec)
    print(f"started training job {spec.name} on {spec.data_uri} ({version or 'unversioned'})")
    artifact = wait_training_job(client, spec.name, poll_s=poll_s, timeout_s=timeout_s)
    if version is not None and f"s3:{object_version(spec.data_uri, s3)}" != version:
        raise JobError(
            f"{spec.data_uri} was replaced while training job {spec.name} ran, so which version "
            "it read is unknown; its bundle is not used. Run the training again."
        )
    return TrainingOutcome(artifact=artifact, data_version=version)


def sagemaker_client() -> SageMakerClient:
    """A SageMaker client with standard-mode retries (the standard AWS configuration)."""
    import boto3
    from botocore.config import Config

    client: SageMakerClient = boto3.session.Session().client(
        "sagemaker", config=Config(retries={"max_attempts": 5, "mode": "standard"})
    )
    return client
