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
from functools import cache

import botocore
import botocore.session
from botocore.model import StringShape

from core.errors import ConfigError

# (botocore shape, the request that takes it)
ENDPOINT = ("ProductionVariantInstanceType", "CreateEndpointConfig")
TRANSFORM = ("TransformInstanceType", "CreateTransformJob")
PROCESSING = ("ProcessingInstanceType", "CreateProcessingJob")
TRAINING = ("TrainingInstanceType", "CreateTrainingJob")


@cache
def allowed_types(shape: str) -> tuple[str, ...]:
    """The instance types botocore's SageMaker model allows for ``shape``."""
    found = botocore.session.get_session().get_service_model("sagemaker").shape_for(shape)
    if not isinstance(found, StringShape) or not found.enum:
        raise ValueError(f"botocore's SageMaker model has no instance type list {shape!r}")
    return tuple(found.enum)


def check_instance_type(value: str, setting: str, api: tuple[str, str]) -> str:
    """``value`` (given as ``setting``: a stack key or a flag) if the ``api`` request takes
    that instance type.

    Raises:
        ConfigError: naming the setting, the request, the closest types it takes and the fix.
    """
    shape, request = api
    allowed = allowed_types(shape)
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=3, cutoff=0.6)
    suggestion = f"the closest it takes: {', '.join(close)}" if close else "e.g. ml.m5.xlarge"
    raise ConfigError(
        f"{setting} is {value!r}, which SageMaker's {request} does not take "
        f"({suggestion}). Use one of the {len(allowed)} types the API reference lists under "
        f"{shape}; if AWS added this one after botocore {botocore.__version__}, update "
        "botocore (uv lock --upgrade-package botocore)."
    )
