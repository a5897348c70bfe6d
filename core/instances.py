"""SageMaker instance types, checked against the list of the API that will get them.

Each SageMaker API takes its own list of instance types (the API reference's "Valid Values"
of ``ProductionVariantInstanceType``, ``TransformInstanceType``, ``ProcessingInstanceType``
and ``TrainingInstanceType``), and the lists differ: ``ml.c6i.large`` runs a transform job but
not a processing job, ``ml.t3.medium`` a processing job but not a transform job. A type the
API does not take passes ``pulumi up`` (the provider does not check it) and fails later: when
the endpoint is created, at every scheduled run, or after ``mlship sagemaker-transform`` has
created its model. Here every instance type a stack key or a launcher flag names is checked
against botocore's model of its API, the same lists ``mlship plan`` checks every request
against, pinned with botocore in ``uv.lock``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

import botocore
import botocore.session
from botocore.model import StringShape

from core.errors import ConfigError


@dataclass(frozen=True)
class InstanceApi:
    """A list of instance types: botocore's ``service`` model's ``shape``, and what takes it."""

    service: str
    shape: str
    taker: str  # named in errors: "<taker> does not take ..."
    example: str


ENDPOINT = InstanceApi(
    "sagemaker", "ProductionVariantInstanceType", "SageMaker's CreateEndpointConfig", "ml.m5.large"
)
TRANSFORM = InstanceApi(
    "sagemaker", "TransformInstanceType", "SageMaker's CreateTransformJob", "ml.m5.xlarge"
)
PROCESSING = InstanceApi(
    "sagemaker", "ProcessingInstanceType", "SageMaker's CreateProcessingJob", "ml.m5.xlarge"
)
TRAINING = InstanceApi(
    "sagemaker", "TrainingInstanceType", "SageMaker's CreateTrainingJob", "ml.m5.xlarge"
)
# EKS's CreateNodegroup takes EC2 instance types (its instanceTypes are plain strings).
EKS_NODE = InstanceApi("ec2", "InstanceType", "an EKS node group (EC2)", "t3.large")


@cache
def allowed_types(service: str, shape: str) -> tuple[str, ...]:
    """The instance types botocore's ``service`` model allows for ``shape``."""
    found = botocore.session.get_session().get_service_model(service).shape_for(shape)
    if not isinstance(found, StringShape) or not found.enum:
        raise ValueError(f"botocore's {service} model has no instance type list {shape!r}")
    return tuple(found.enum)


def check_instance_type(value: str, setting: str, api: InstanceApi) -> str:
    """``value`` (given as ``setting``: a stack key or a flag) if ``api`` takes that instance
    type.

    Raises:
        ConfigError: naming the setting, what refuses it, the closest types it takes and the
            fix.
    """
    allowed = allowed_types(api.service, api.shape)
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=3, cutoff=0.6)
    suggestion = f"the closest it takes: {', '.join(close)}" if close else f"e.g. {api.example}"
    raise ConfigError(
        f"{setting} is {value!r}, which {api.taker} does not take ({suggestion}). Use one of "
        f"the {len(allowed)} types the API reference lists under {api.shape}; if AWS added "
        f"this one after botocore {botocore.__version__}, update botocore (uv lock "
        "--upgrade-package botocore)."
    )
