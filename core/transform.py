"""What a Batch Transform job and its serving container agree on.

SageMaker sends mini-batches of up to the job's ``MaxPayloadInMB`` binary megabytes; the
container takes bodies up to ``MLSHIP_MAX_BODY_BYTES``. The one-off launcher
(``pipelines/sagemaker``) and the scheduled pipeline (``infra``) both give the container its
environment from :func:`container_environment`, so every mini-batch a job may send is
accepted.
"""

from __future__ import annotations

import re

from core.errors import ConfigError

MIB = 1024 * 1024  # MaxPayloadInMB counts binary megabytes
# SageMaker's MaxPayloadInMB when neither the job nor the container chooses one, and its
# real-time endpoints' payload limit.
DEFAULT_PAYLOAD_MB = 6
# CreateTransformJob's MaxPayloadInMB range is 0-100; mlship needs a positive limit.
PAYLOAD_MB_RANGE = (1, 100)
MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks ModelDataUrl
# CreateTransformJob (API reference, MaxPayloadInMB): "If you specify the
# MaxConcurrentTransforms parameter, the value of (MaxConcurrentTransforms * MaxPayloadInMB)
# also cannot exceed 100 MB."
MAX_IN_FLIGHT_MB = 100
# TransformInput.CompressionType's values (API reference): with Gzip every input file is
# gzip-compressed and SageMaker decompresses it before splitting it into mini-batches.
COMPRESSIONS = ("None", "Gzip")


def container_environment(max_payload_mb: int) -> dict[str, str]:
    """The serving container's settings in a transform job (names are ``AppSettings``
    fields): the bundle SageMaker unpacked, and the job's payload limit as the body limit."""
    return {"MLSHIP_MODEL_URI": MODEL_DIR, "MLSHIP_MAX_BODY_BYTES": str(max_payload_mb * MIB)}


def concurrent_transforms(workers: int, max_payload_mb: int) -> int:
    """The requests a transform job should send one instance at once: one per worker, as long
    as that many full mini-batches stay within :data:`MAX_IN_FLIGHT_MB` (at least one)."""
    return max(1, min(workers, MAX_IN_FLIGHT_MB // max(1, max_payload_mb)))


# CSV columns before the features that identify a record (DataProcessing, "Associate
# Prediction Results with Input Records"): the job passes the model each line without them
# (InputFilter "$[N:]": "for CSV data, each row is taken as a JSON array") and writes every
# input line followed by its answer (JoinSource "Input": "the joined input data is followed by
# the transformed data"; OutputFilter "$", the whole joined line).
ID_COLUMNS_RANGE = (0, 100)
ID_COLUMNS_CONTENT_TYPE = "text/csv"  # JSON's filters select attributes, not columns
# JSON Lines records that hold their features under one attribute beside their identifiers
# (the guide's JSON example: InputFilter "$.features"): the job passes the model that
# attribute's value and writes each input record with the answer under "SageMakerOutput"
# ("the file can't contain the attribute name SageMakerOutput").
FEATURES_ATTRIBUTE_CONTENT_TYPE = "application/jsonlines"
JOINED_OUTPUT = "SageMakerOutput"
# A JSONPath dot-notation child; "$.<name>" within DataProcessing's 63 characters.
_ATTRIBUTE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,60}$")


def check_id_columns(id_columns: int, content_type: str, setting: str = "--id-columns") -> int:
    """``id_columns`` if a job reading ``content_type`` can leave that many columns out.

    Raises:
        ConfigError: naming ``setting`` (a flag or a stack key) and the fix.
    """
    low, high = ID_COLUMNS_RANGE
    if not low <= id_columns <= high:
        raise ConfigError(f"{setting} {id_columns} must be between {low} and {high}.")
    if id_columns and content_type != ID_COLUMNS_CONTENT_TYPE:
        raise ConfigError(
            f"{setting} {id_columns} needs {ID_COLUMNS_CONTENT_TYPE} input: a job's filters "
            f"pick CSV columns by position, but {content_type} records by attribute. Write "
            "the identifiers as the first CSV columns, or for JSON Lines hold the features "
            "under one attribute beside them (--features-attribute, "
            "mlship:batchFeaturesAttribute)."
        )
    return id_columns


def check_features_attribute(
    name: str, content_type: str, setting: str = "--features-attribute"
) -> str:
    """``name`` (empty: none) if a job reading ``content_type`` can pass the model that
    attribute of each record.

    Raises:
        ConfigError: naming ``setting`` (a flag or a stack key) and the fix.
    """
    if not name:
        return name
    if not _ATTRIBUTE_RE.match(name) or name == JOINED_OUTPUT:
        raise ConfigError(
            f"{setting} is {name!r}: give the attribute's name, letters, digits and _ (at most "
            f"61, not starting with a digit, not {JOINED_OUTPUT}, which the job writes the "
            "answer to), e.g. features."
        )
    if content_type != FEATURES_ATTRIBUTE_CONTENT_TYPE:
        raise ConfigError(
            f"{setting} {name!r} needs {FEATURES_ATTRIBUTE_CONTENT_TYPE} input: {content_type} "
            "records have columns, not attributes. Leave the identifiers in the first columns "
            "and give their number instead (--id-columns, mlship:batchIdColumns)."
        )
    return name


def data_processing(id_columns: int, features_attribute: str = "") -> dict[str, str] | None:
    """CreateTransformJob's DataProcessing for ``id_columns`` leading identifier columns
    (CSV) or records holding their features under ``features_attribute`` (JSON Lines), or
    None (the default processing: the whole record in, the answer alone out) for neither."""
    if id_columns:
        return {"InputFilter": f"$[{id_columns}:]", "JoinSource": "Input", "OutputFilter": "$"}
    if features_attribute:
        return {
            "InputFilter": f"$.{features_attribute}",
            "JoinSource": "Input",
            "OutputFilter": "$",
        }
    return None
