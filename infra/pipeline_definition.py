"""The scheduled batch-scoring pipeline as a SageMaker Pipelines definition, and its checks.

Two steps, both run by SageMaker itself (no code of ours to host):

1. ``CheckInputData``, the check before scoring, one of (``mlship:batchInputCheck``):

   - ``mlship`` (the default): a ``Processing`` step that runs the serving image's
     ``check-input`` (``app/input_check.py``) over the input prefix: every mini-batch the
     transform job will send, read by the service's own reader with the job's payload limit.
     A mini-batch the service would refuse fails the step (exit code 1), naming the file, the
     lines and the reason in the step's exit message (``/opt/ml/output/message``, "Save and
     Access Metadata Information About Your Processing Job") and its log; the full report goes
     to ``data-quality/report.json``.
   - ``model-monitor``: a ``QualityCheck`` step (``CheckType: DATA_QUALITY``): SageMaker Model
     Monitor's prebuilt analyzer profiles the input prefix and, with ``FailOnViolation``, fails
     the run when the data breaks the training baseline's ``constraints.json``. This is the
     documented step the SDK's ``MonitorBatchTransformStep(monitor_before_transform=True)``
     builds. AWS no longer opens Model Monitor to new customers ("Amazon SageMaker Model
     Monitor availability change"), hence not the default.

   Either way its ``Arguments`` are a CreateProcessingJob request without the job name.
2. ``ScoreInputData``, a ``Transform`` step after it: Batch Transform on N instances with the
   request shape of ``pipelines/sagemaker/requests.transform_job_request`` (MultiRecord
   mini-batches of at most MaxPayloadInMB, one record a line in and out); its ``Arguments`` are
   a CreateTransformJob request without the job name.

Each run writes under ``<output prefix><Execution.StartDateTime>/`` (``predictions/`` and
``data-quality/``). References: the pipeline definition JSON schema
(https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/),
"Pipelines steps" (Transform, QualityCheck), "Pass data between steps" (``Get``,
``Std:Join``, execution variables) in the SageMaker developer guide; and the SageMaker SDK's
``sagemaker.mlops.workflow`` (``Pipeline.definition``: ``Version`` 2020-12-01, step
``Arguments`` = the job request minus its name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.baseline import baseline_keys, dataset_format
from core.transform import data_processing

VERSION = "2020-12-01"
CHECK_STEP = "CheckInputData"
SCORE_STEP = "ScoreInputData"
INPUT_PARAMETER = "InputUri"
OUTPUT_PARAMETER = "OutputUri"
# Model Monitor's container paths and names, as the SDK's model_monitoring module sets them.
_PROCESSING = "/opt/ml/processing"
_DATASET_INPUT = "baseline_dataset_input"
_DATASET_PATH = f"{_PROCESSING}/input/{_DATASET_INPUT}"
_OUTPUT_PATH = f"{_PROCESSING}/output"
# mlship's check: where the job puts the input prefix and the bundle, and where the container
# leaves the summary SageMaker returns as the job's ExitMessage.
_INPUT_PATH = f"{_PROCESSING}/input/data"
_MODEL_PATH = f"{_PROCESSING}/input/model"
_EXIT_MESSAGE = "/opt/ml/output/message"
REPORT_FILE = "report.json"
# Model Monitor prebuilt container registries ("Amazon SageMaker Model Monitor prebuilt
# container", repository sagemaker-model-monitor-analyzer; the SDK's image_uri_config/
# model-monitor.json has the same accounts).
ANALYZER_REGISTRIES = {
    "af-south-1": "875698925577",
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-northeast-3": "990339680094",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ap-southeast-3": "669540362728",
    "ca-central-1": "536280801234",
    "eu-central-1": "048819808253",
    "eu-central-2": "590183933784",
    "eu-north-1": "895015795356",
    "eu-south-1": "933208885752",
    "eu-south-2": "437450045455",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "il-central-1": "843974653677",
    "me-central-1": "588750061953",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}
# The definition schema's enums and the developer guide's execution variables.
STEP_TYPES = frozenset(
    {
        "Training",
        "Processing",
        "Transform",
        "CreateModel",
        "RegisterModel",
        "Condition",
        "Fail",
        "Lambda",
        "Callback",
        "QualityCheck",
        "ClarifyCheck",
        "EMR",
        "AutoML",
        "Tuning",
    }
)
PARAMETER_TYPES = frozenset({"String", "Integer", "Boolean", "Float"})
EXECUTION_VARIABLES = frozenset(
    {
        "StartDateTime",
        "CurrentDateTime",
        "PipelineName",
        "PipelineArn",
        "PipelineExecutionId",
        "PipelineExecutionArn",
    }
)
CHECK_TYPES = frozenset({"DATA_QUALITY", "MODEL_QUALITY"})
_STEP_NAME_RE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")


@dataclass(frozen=True)
class BatchPipelineSpec:
    """What the definition needs, resolved (bucket name and ARNs known)."""

    region: str
    bucket: str
    input_prefix: str
    output_prefix: str
    baseline_prefix: str
    model_name: str
    job_role_arn: str
    key_arn: str
    instance_type: str
    instance_count: int
    check_instance_type: str  # the check's processing job: one instance of this type
    check_volume_gb: int  # ... with this volume, which holds the whole input prefix
    check_max_runtime_minutes: int  # ... stopped past this, the prefix's download included
    max_payload_mb: int
    content_type: str
    compression: str  # TransformInput.CompressionType: None, or Gzip (every file gzip)
    id_columns: int  # leading CSV identifier columns: DataProcessing (core.transform)
    features_attribute: str  # JSON Lines: the records' attribute the model gets ("": whole)
    input_check: str  # mlship:batchInputCheck
    image_uri: str  # the serving image (mlship's check runs its check-input)
    model_data_key: str  # the bundle's model.tar.gz in the bucket
    # mlship's check fails a feature past these shares (%): the endpoint's alarm thresholds
    max_missing_percent: int | None = None
    max_out_of_range_percent: int | None = None


def analyzer_image(region: str) -> str:
    """The Model Monitor analyzer image of ``region`` (KeyError for a region it is not in)."""
    return (
        f"{ANALYZER_REGISTRIES[region]}.dkr.ecr.{region}.amazonaws.com/"
        "sagemaker-model-monitor-analyzer"
    )


def _run_prefix(leaf: str) -> dict[str, Any]:
    """``<OutputUri><Execution.StartDateTime>/<leaf>/``: one dated prefix per run."""
    return {
        "Std:Join": {
            "On": "",
            "Values": [
                {"Get": f"Parameters.{OUTPUT_PARAMETER}"},
                {"Get": "Execution.StartDateTime"},
                f"/{leaf}/",
            ],
        }
    }


def transform_arguments(spec: BatchPipelineSpec) -> dict[str, Any]:
    """The Transform step's CreateTransformJob request (no job name: Pipelines names it).

    The same shape as ``pipelines.sagemaker.requests.transform_job_request`` (a test compares
    them): the container's body limit (``MLSHIP_MAX_BODY_BYTES``) is set on the model to
    ``max_payload_mb`` MiB, so no mini-batch is refused for its size.
    """
    request: dict[str, Any] = {
        "ModelName": spec.model_name,
        "MaxPayloadInMB": spec.max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": {"Get": f"Parameters.{INPUT_PARAMETER}"},
                }
            },
            "ContentType": spec.content_type,
            "CompressionType": spec.compression,
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": _run_prefix("predictions"),
            "Accept": spec.content_type,
            "AssembleWith": "Line",
            "KmsKeyId": spec.key_arn,
        },
        "TransformResources": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeKmsKeyId": spec.key_arn,
        },
    }
    processing = data_processing(spec.id_columns, spec.features_attribute)
    if processing is not None:
        request["DataProcessing"] = processing
    return request


def _processing_job(
    spec: BatchPipelineSpec,
    app: dict[str, Any],
    inputs: list[tuple[str, Any, str]],
    output_name: str,
) -> dict[str, Any]:
    """A CreateProcessingJob request (no job name) on one instance of the check's type:
    ``inputs`` as (name, S3 URI, local path), the output directory to the run's
    ``data-quality/`` prefix, network-isolated, output and volume encrypted with the stack
    key."""
    return {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": spec.check_instance_type,
                "VolumeSizeInGB": spec.check_volume_gb,
                "VolumeKmsKeyId": spec.key_arn,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60 * spec.check_max_runtime_minutes},
        "AppSpecification": app,
        "RoleArn": spec.job_role_arn,
        "ProcessingInputs": [
            {
                "InputName": name,
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": path,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                    "S3CompressionType": "None",
                },
            }
            for name, uri, path in inputs
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": output_name,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": _run_prefix("data-quality"),
                        "LocalPath": _OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": spec.key_arn,
        },
        "NetworkConfig": {"EnableNetworkIsolation": True},
    }


def check_arguments(spec: BatchPipelineSpec) -> dict[str, Any]:
    """The QualityCheck step's CreateProcessingJob request (``model-monitor``): Model
    Monitor's analyzer over the input prefix."""
    input_prefix = {"Get": f"Parameters.{INPUT_PARAMETER}"}
    request = _processing_job(
        spec,
        {"ImageUri": analyzer_image(spec.region)},
        [(_DATASET_INPUT, input_prefix, _DATASET_PATH)],
        "monitoring_output",
    )
    request["Environment"] = {
        "dataset_format": json.dumps(dataset_format(spec.content_type)),
        "dataset_source": _DATASET_PATH,
        "output_path": _OUTPUT_PATH,
        "publish_cloudwatch_metrics": "Disabled",
    }
    return request


def check_input_command(spec: BatchPipelineSpec) -> list[str]:
    """The serving image's arguments in mlship's check (``docker run IMAGE <these>``: the
    image's entrypoint runs ``mlship check-input``), with the transform job's format,
    payload limit and compression, so the check reads the mini-batches the job will send,
    and the stack's missing-value and out-of-range alarm thresholds as its data-quality
    gate."""
    model_file = spec.model_data_key.rsplit("/", 1)[-1]
    command = [
        "check-input",
        "--model", f"{_MODEL_PATH}/{model_file}",
        "--input", _INPUT_PATH,
        "--content-type", spec.content_type,
        "--max-payload-mb", str(spec.max_payload_mb),
        "--compression", spec.compression,
        "--id-columns", str(spec.id_columns),
        "--report", f"{_OUTPUT_PATH}/{REPORT_FILE}",
        "--message", _EXIT_MESSAGE,
    ]  # fmt: skip
    if spec.features_attribute:
        command += ["--features-attribute", spec.features_attribute]
    for option, limit in (
        ("--max-missing-percent", spec.max_missing_percent),
        ("--max-out-of-range-percent", spec.max_out_of_range_percent),
    ):
        if limit is not None:
            command += [option, str(limit)]
    return command


def input_check_arguments(spec: BatchPipelineSpec) -> dict[str, Any]:
    """The Processing step's CreateProcessingJob request (``mlship``): the serving image's
    ``check-input`` over the input prefix and the bundle the transform job serves."""
    return _processing_job(
        spec,
        {"ImageUri": spec.image_uri, "ContainerArguments": check_input_command(spec)},
        [
            ("data", {"Get": f"Parameters.{INPUT_PARAMETER}"}, _INPUT_PATH),
            ("model", f"s3://{spec.bucket}/{spec.model_data_key}", _MODEL_PATH),
        ],
        "report",
    )


def check_step(spec: BatchPipelineSpec) -> dict[str, Any]:
    """The first step: the input check ``spec.input_check`` names."""
    if spec.input_check == "mlship":
        return {"Name": CHECK_STEP, "Type": "Processing", "Arguments": input_check_arguments(spec)}
    # The keys ``mlship publish`` writes the bundle's baseline to (core.baseline).
    keys = baseline_keys(spec.baseline_prefix)
    return {
        "Name": CHECK_STEP,
        "Type": "QualityCheck",
        "Arguments": check_arguments(spec),
        "CheckType": "DATA_QUALITY",
        "SkipCheck": False,
        "FailOnViolation": True,
        "RegisterNewBaseline": False,
        "SuppliedBaselineStatistics": f"s3://{spec.bucket}/{keys.statistics}",
        "SuppliedBaselineConstraints": f"s3://{spec.bucket}/{keys.constraints}",
    }


def definition(spec: BatchPipelineSpec) -> dict[str, Any]:
    """The pipeline definition: parameters (input and output prefixes), check, then score."""
    return {
        "Version": VERSION,
        "Metadata": {},
        "Parameters": [
            {
                "Name": INPUT_PARAMETER,
                "Type": "String",
                "DefaultValue": f"s3://{spec.bucket}/{spec.input_prefix}",
            },
            {
                "Name": OUTPUT_PARAMETER,
                "Type": "String",
                "DefaultValue": f"s3://{spec.bucket}/{spec.output_prefix}",
            },
        ],
        "Steps": [
            check_step(spec),
            {
                "Name": SCORE_STEP,
                "Type": "Transform",
                "DependsOn": [CHECK_STEP],
                "Arguments": transform_arguments(spec),
            },
        ],
    }


# The job request each step type's Arguments are (minus the job name member).
STEP_REQUESTS = {
    "Transform": ("CreateTransformJob", "TransformJobName"),
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "QualityCheck": ("CreateProcessingJob", "ProcessingJobName"),
    "Training": ("CreateTrainingJob", "TrainingJobName"),
}


def _references(value: Any) -> Iterator[str]:
    """Every ``{"Get": ...}`` path in ``value``."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            yield value["Get"]
            return
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """``value`` with ``Get`` and ``Std:Join`` evaluated as at run time: parameters to their
    defaults, execution variables to an example value of their kind."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            path = str(value["Get"])
            kind, _, name = path.partition(".")
            if kind == "Parameters":
                return parameters[name]
            return "2026-11-30T02:00:00.000Z" if name.endswith("DateTime") else f"example-{name}"
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return str(join["On"]).join(str(resolve(v, parameters)) for v in join["Values"])
        return {k: resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    return value


def definition_problems(doc: Mapping[str, Any]) -> list[str]:
    """What the documented definition schema refuses in ``doc`` (beyond the job requests,
    which :func:`step_requests` hands to botocore's models)."""
    problems: list[str] = []
    if doc.get("Version") != VERSION:
        problems.append(f"Version is {doc.get('Version')!r}, not {VERSION!r}")
    allowed_top = {"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "Steps"}
    problems += [f"unknown top-level member {k!r}" for k in sorted(set(doc) - allowed_top)]
    params = doc.get("Parameters") or []
    names = [p.get("Name") for p in params]
    if len(set(names)) != len(names):
        problems.append("parameter names are not unique")
    for p in params:
        if p.get("Type") not in PARAMETER_TYPES:
            problems.append(f"parameter {p.get('Name')!r} has type {p.get('Type')!r}")
    steps = doc.get("Steps") or []
    step_names = [s.get("Name") for s in steps]
    if not steps:
        problems.append("no steps")
    if len(set(step_names)) != len(step_names):
        problems.append("step names are not unique")
    for step in steps:
        name = step.get("Name")
        if not isinstance(name, str) or not _STEP_NAME_RE.match(name):
            problems.append(f"step name {name!r} is not 1-64 letters, digits, - or _")
        if step.get("Type") not in STEP_TYPES:
            problems.append(f"step {name!r} has type {step.get('Type')!r}")
        if "Arguments" not in step and step.get("Type") in STEP_REQUESTS:
            problems.append(f"step {name!r} has no Arguments")
        for dep in step.get("DependsOn") or []:
            if dep not in step_names or dep == name:
                problems.append(f"step {name!r} depends on {dep!r}, no other step")
        if step.get("Type") == "QualityCheck":
            if step.get("CheckType") not in CHECK_TYPES:
                problems.append(f"step {name!r} has CheckType {step.get('CheckType')!r}")
            for key in ("SkipCheck", "FailOnViolation", "RegisterNewBaseline"):
                if not isinstance(step.get(key), bool):
                    problems.append(f"step {name!r} {key} is not a boolean")
        for ref in _references(step):
            kind, _, rest = ref.partition(".")
            if kind == "Parameters" and rest not in names:
                problems.append(f"step {name!r} reads undeclared parameter {rest!r}")
            elif kind == "Execution" and rest not in EXECUTION_VARIABLES:
                problems.append(f"step {name!r} reads unknown execution variable {rest!r}")
            elif kind == "Steps" and rest.split(".", 1)[0] not in step_names:
                problems.append(f"step {name!r} reads unknown step {rest!r}")
            elif kind not in ("Parameters", "Execution", "Steps"):
                problems.append(f"step {name!r} has reference {ref!r}")
    return problems


def step_requests(doc: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each job step as (step name, operation, request): its Arguments resolved, with a job
    name, as SageMaker will receive them at run time."""
    params = {p["Name"]: p.get("DefaultValue") for p in doc.get("Parameters") or []}
    requests = []
    for step in doc.get("Steps") or []:
        operation = STEP_REQUESTS.get(step.get("Type", ""))
        if operation is None or "Arguments" not in step:
            continue
        name, job_name_member = operation
        request = {
            job_name_member: f"pipelines-{step['Name']}",
            **resolve(step["Arguments"], params),
        }
        requests.append((step["Name"], name, request))
    return requests
