"""SageMaker instance types, checked against the list of the API that will get them.

Each SageMaker API takes its own list of instance types (the API reference's "Valid Values"
of ``ProductionVariantInstanceType``, ``TransformInstanceType`` and
``ProcessingInstanceType``), and the lists differ: ``ml.c6i.large`` runs a transform job but
not a processing job, ``ml.t3.medium`` a processing job but not a transform job. A type the
API does not take passes ``pulumi up`` (the provider does not check it) and fails later: when
the endpoint is created, or at every scheduled run. Here each ``*InstanceType`` key is checked
against botocore's model of its API, the same lists ``mlship plan`` checks every request
against, pinned with botocore in ``uv.lock``.
"""

from __future__ import annotations

import difflib

import botocore

from core.errors import ConfigError
from infra.api.shapes import enum_values

# (botocore shape, the request that takes it)
ENDPOINT = ("ProductionVariantInstanceType", "CreateEndpointConfig")
TRANSFORM = ("TransformInstanceType", "CreateTransformJob")
PROCESSING = ("ProcessingInstanceType", "CreateProcessingJob")


def check_instance_type(value: str, key: str, api: tuple[str, str]) -> str:
    """``value`` (of ``key``) if the ``api`` request takes that instance type.

    Raises:
        ConfigError: naming the key, the request, the closest types it takes and the fix.
    """
    shape, request = api
    allowed = enum_values("sagemaker", shape)
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=3, cutoff=0.6)
    suggestion = f"the closest it takes: {', '.join(close)}" if close else "e.g. ml.m5.xlarge"
    raise ConfigError(
        f"mlship:{key} is {value!r}, which SageMaker's {request} does not take "
        f"({suggestion}). Use one of the {len(allowed)} types the API reference lists under "
        f"{shape}; if AWS added this one after botocore {botocore.__version__}, update "
        "botocore (uv lock --upgrade-package botocore)."
    )
