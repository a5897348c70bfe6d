"""Scheduled batch scoring: an S3 prefix scored on a schedule by SageMaker Batch Transform.

Off unless ``batchSchedule`` is set. The expression is EventBridge Scheduler's (``cron(...)``
with six fields, ``rate(N unit)``), checked here against the forms the Scheduler user guide's
"Schedule types" page documents, so a typo fails the plan rather than the deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError
from core.instances import PROCESSING, TRANSFORM, check_instance_type
from core.transform import (
    COMPRESSIONS,
    ID_COLUMNS_RANGE,
    PAYLOAD_MB_RANGE,
    check_features_attribute,
    check_id_columns,
)
from infra.config.keys import Reader

# EventBridge Scheduler user guide, "Schedule types on EventBridge Scheduler": rate(value unit)
# with unit minute(s) | hour(s) | day(s) (singular for 1), and cron(minutes hours day-of-month
# month day-of-week year), where one of day-of-month / day-of-week must be "?".
_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON_RE = re.compile(r"^cron\((\S+ \S+ \S+ \S+ \S+ \S+)\)$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")
# Batch Transform content types the container reads line by line (app: JSON Lines or CSV).
CONTENT_TYPES = ("text/csv", "application/jsonlines")
# The check before scoring: mlship's own (the serving image's `check-input` in a processing
# job: app/input_check.py), or SageMaker Model Monitor's analyzer against the training
# baseline, which AWS no longer opens to new customers ("Amazon SageMaker Model Monitor
# availability change", SageMaker developer guide).
INPUT_CHECKS = ("mlship", "model-monitor")
# The Model Monitor baseline names the columns as the analyzer names a headerless CSV's
# (core/baseline.py): JSON Lines input would fail that check on every run.
MODEL_MONITOR_CONTENT_TYPE = "text/csv"
# ProcessingClusterConfig.VolumeSizeInGB's range (SageMaker API reference; botocore's model).
CHECK_VOLUME_GB_RANGE = (1, 16_384)
# ProcessingStoppingCondition.MaxRuntimeInSeconds's range (1-777,600 s), in whole minutes.
CHECK_MAX_RUNTIME_MINUTES_RANGE = (1, 12_960)


@dataclass(frozen=True)
class BatchSchedule:
    """What the scheduled batch scoring does, and where it reads and writes.

    Attributes:
        expression: EventBridge Scheduler ``cron(...)`` or ``rate(...)`` expression (UTC).
        instance_type: Batch Transform instance type.
        instance_count: Batch Transform instances.
        check_instance_type: The instance type of the check before scoring (one instance).
        check_volume_gb: Its storage volume, which holds a copy of the whole input prefix.
        check_max_runtime_minutes: How long it may run, the download of the prefix included.
        max_payload_mb: The job's MaxPayloadInMB, and the container's body limit.
        content_type: Input and output format, one record a line.
        compression: The input files' compression (``Gzip``: every file gzip).
        id_columns: Leading CSV columns that identify a record (not features): left out of
            what the model gets, and kept in the output before each answer.
        features_attribute: The JSON Lines records' attribute holding the features (the
            others identify the record): the model gets its value, and the output keeps the
            record with the answer under SageMakerOutput.
        input_check: The check before scoring (:data:`INPUT_CHECKS`).
        input_prefix: Key prefix of the files to score in the artifact bucket.
        output_prefix: Key prefix of the answers; each run writes under ``<prefix><start time>/``.
        baseline_prefix: Key prefix of the training data's ``statistics.json`` and
            ``constraints.json`` (Model Monitor's data-quality baseline, which the
            ``model-monitor`` check reads).
    """

    expression: str
    instance_type: str
    instance_count: int
    check_instance_type: str
    check_volume_gb: int
    check_max_runtime_minutes: int
    max_payload_mb: int
    content_type: str
    compression: str
    id_columns: int
    features_attribute: str
    input_check: str
    input_prefix: str
    output_prefix: str
    baseline_prefix: str

    @property
    def checked_baseline(self) -> str | None:
        """Where the check before scoring reads a baseline: Model Monitor's reads the
        training baseline under ``baseline_prefix``; mlship's reads the bundle (None)."""
        return self.baseline_prefix if self.input_check == "model-monitor" else None


def check_schedule_expression(expression: str, key: str) -> str:
    """``expression`` if EventBridge Scheduler accepts its form, else a ConfigError."""
    rate = _RATE_RE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ConfigError(
                f"mlship:{key} is {expression!r}: a rate is at least 1, singular unit for 1 "
                "(rate(1 day)) and plural otherwise (rate(6 hours))."
            )
        return expression
    cron = _CRON_RE.match(expression)
    if cron:
        fields = cron.group(1).split()
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ConfigError(
                f"mlship:{key} is {expression!r}: exactly one of day-of-month (3rd field) and "
                "day-of-week (5th field) must be '?', e.g. cron(0 2 * * ? *)."
            )
        return expression
    raise ConfigError(
        f"mlship:{key} is {expression!r}: give an EventBridge Scheduler expression such as "
        "cron(0 2 * * ? *) (02:00 UTC daily) or rate(1 day), or leave it empty."
    )


def _prefix(value: str, name: str) -> str:
    if not _PREFIX_RE.match(value) or value.startswith("/") or "//" in value:
        raise ConfigError(
            f"mlship:{name} is {value!r}: give a key prefix in the artifact bucket ending "
            "in '/', e.g. batch/input/."
        )
    return value


def parse_batch(r: Reader) -> BatchSchedule | None:
    """``batch*`` keys; None when ``batchSchedule`` is empty (scheduled scoring off).

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    expression = r.string("batchSchedule").strip()
    if not expression:
        return None
    batch = BatchSchedule(
        expression=check_schedule_expression(expression, "batchSchedule"),
        instance_type=check_instance_type(
            r.string("batchInstanceType"), "mlship:batchInstanceType", TRANSFORM
        ),
        instance_count=r.integer("batchInstanceCount", 1, 20),
        check_instance_type=check_instance_type(
            r.string("batchCheckInstanceType"), "mlship:batchCheckInstanceType", PROCESSING
        ),
        check_volume_gb=r.integer("batchCheckVolumeGb", *CHECK_VOLUME_GB_RANGE),
        check_max_runtime_minutes=r.integer(
            "batchCheckMaxRuntimeMinutes", *CHECK_MAX_RUNTIME_MINUTES_RANGE
        ),
        max_payload_mb=r.integer("batchMaxPayloadMb", *PAYLOAD_MB_RANGE),
        content_type=r.choice("batchContentType", CONTENT_TYPES),
        compression=r.choice("batchCompression", COMPRESSIONS),
        id_columns=r.integer("batchIdColumns", *ID_COLUMNS_RANGE),
        features_attribute=r.string("batchFeaturesAttribute").strip(),
        input_check=r.choice("batchInputCheck", INPUT_CHECKS),
        input_prefix=_prefix(r.string("batchInputPrefix"), "batchInputPrefix"),
        output_prefix=_prefix(r.string("batchOutputPrefix"), "batchOutputPrefix"),
        baseline_prefix=_prefix(r.string("batchBaselinePrefix"), "batchBaselinePrefix"),
    )
    if batch.input_check == "model-monitor" and batch.content_type != MODEL_MONITOR_CONTENT_TYPE:
        raise ConfigError(
            f"mlship:batchContentType is {batch.content_type!r}: with mlship:batchInputCheck "
            "model-monitor the run checks its input against the training data's baseline, "
            "which describes headerless CSV columns (_c0, _c1, ...) that JSON Lines records do "
            f"not have, so every run would stop at the check. Use {MODEL_MONITOR_CONTENT_TYPE}, "
            "or set mlship:batchInputCheck to mlship, which reads JSON Lines as the service does."
        )
    if batch.input_check == "model-monitor" and batch.compression != "None":
        raise ConfigError(
            f"mlship:batchCompression is {batch.compression!r}: with mlship:batchInputCheck "
            "model-monitor the analyzer reads the input files as they are stored, and its "
            "reading of compressed files is not documented. Set mlship:batchInputCheck to "
            "mlship (it decompresses each file as the transform job does), or store the "
            "files uncompressed."
        )
    check_id_columns(batch.id_columns, batch.content_type, "mlship:batchIdColumns")
    check_features_attribute(
        batch.features_attribute, batch.content_type, "mlship:batchFeaturesAttribute"
    )
    if batch.input_check == "model-monitor" and batch.id_columns:
        raise ConfigError(
            f"mlship:batchIdColumns is {batch.id_columns}: with mlship:batchInputCheck "
            "model-monitor the analyzer profiles every column of the input files, identifiers "
            "included, against a baseline of the features alone, so every run would stop at "
            "the check. Set mlship:batchInputCheck to mlship (it reads each line without its "
            "identifiers, as the transform job passes it), or leave the identifiers out."
        )
    if batch.output_prefix.startswith(batch.input_prefix) or batch.input_prefix.startswith(
        batch.output_prefix
    ):
        raise ConfigError(
            f"mlship:batchOutputPrefix {batch.output_prefix!r} overlaps mlship:batchInputPrefix "
            f"{batch.input_prefix!r}: the next run would score the last run's answers. Use "
            "separate prefixes such as batch/input/ and batch/output/."
        )
    return batch
