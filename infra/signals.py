"""The model-signal log line contract, and the CloudWatch metric filters and alarms it feeds.

The serving container writes its monitoring figures (feature drift, data quality, prediction
shares) to stdout, one JSON object a line; no network access and no CloudWatch client in the
container. CloudWatch Logs turns them into metrics with the metric filters below, which the
stack creates on the log group each target writes to:

- SageMaker: the container's stdout goes, line by line, to ``/aws/sagemaker/Endpoints/<endpoint>``
  ("Log Amazon SageMaker AI events with Amazon CloudWatch"): the line is the log event.
- EKS: the CloudWatch Observability add-on's Fluent Bit ships container stdout to
  ``/aws/containerinsights/<cluster>/application`` with its kubernetes filter's ``Merge_Log On``
  and ``Merge_Log_Key log_processed``: the event is ``{"log": "<line>", "log_processed": {<the
  line's fields>}, "kubernetes": {...}}``, so the same fields sit under ``$.log_processed``.

Why metric filters and not the embedded metric format (EMF): EMF needs its ``_aws`` metadata at
the top level of the event (CloudWatch "Specification: Embedded metric format"), which the EKS
route never has (the line is nested under ``log`` / ``log_processed``); metric filters read any
JSON path, so one contract serves both targets. ("Creating metrics from log events using
filters", "Filter pattern syntax for metric filters": JSON patterns ``{ $.a = "x" && $.b >= 0 }``,
metric values ``$.field``, up to three dimensions from ``$.field`` values per filter.)

The contract (the line's fields, the signal keys and the limits of ``value``) is defined once in
``core/signals.py``, which the serving app writes by; the filters below select those fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.signals import (
    CLASS_SHARE,
    DIMENSION_FIELD,
    EVENT,
    EVENT_FIELD,
    FEATURE_PSI,
    MISSING_RATIO,
    MODEL_VERSION_FIELD,
    OUT_OF_RANGE_RATIO,
    SIGNAL_FIELD,
    VALUE_FIELD,
)

# The prefix of the line's fields in each target's log events (see the module docstring).
FIELD_ROOT = {"sagemaker": "$", "eks": "$.log_processed"}


@dataclass(frozen=True)
class Signal:
    """One kind of signal line: its ``signal`` value, the metric it becomes, the metric's
    dimension, and what ``value`` means."""

    key: str
    metric: str
    dimension: str
    unit: str
    meaning: str

    @property
    def dimension_field(self) -> str:
        """The line's field that names the feature or class (``core.signals``)."""
        return DIMENSION_FIELD[self.key]


SIGNALS: tuple[Signal, ...] = (
    Signal(
        FEATURE_PSI,
        "FeaturePsi",
        "Feature",
        "None",
        "population stability index of the feature's recent values against training (>= 0)",
    ),
    Signal(
        MISSING_RATIO,
        "MissingRatio",
        "Feature",
        "None",
        "share of recent rows with the feature missing (0-1)",
    ),
    Signal(
        OUT_OF_RANGE_RATIO,
        "OutOfRangeRatio",
        "Feature",
        "None",
        "share of recent rows with the feature outside its training range or categories (0-1)",
    ),
    Signal(
        CLASS_SHARE,
        "ClassShare",
        "Class",
        "None",
        "share of recent predictions that are this class (0-1); regression: not emitted",
    ),
)
SIGNALS_BY_KEY = {s.key: s for s in SIGNALS}


@dataclass(frozen=True)
class MetricFilterSpec:
    """One CloudWatch Logs metric filter (PutMetricFilter), before it becomes a resource."""

    role: str
    pattern: str
    metric: str
    value: str
    dimensions: dict[str, str]


def namespace(name_prefix: str) -> str:
    """The stack's own metric namespace, e.g. ``mlship-prod/ModelSignals``."""
    return f"{name_prefix}/ModelSignals"


def filter_specs(target: str) -> list[MetricFilterSpec]:
    """Two filters per signal: one by (dimension, ModelVersion) for the dashboard, one without
    dimensions so a single alarm on its Maximum sees every feature (an alarm needs one exact
    dimension set, and the features are not known to the stack)."""
    root = FIELD_ROOT[target]
    specs = []
    for s in SIGNALS:
        pattern = (
            f'{{ {root}.{EVENT_FIELD} = "{EVENT}" && {root}.{SIGNAL_FIELD} = "{s.key}" '
            f"&& {root}.{VALUE_FIELD} >= 0 }}"
        )
        value = f"{root}.{VALUE_FIELD}"
        specs.append(
            MetricFilterSpec(f"{s.key.replace('_', '-')}-any", pattern, s.metric, value, {})
        )
        specs.append(
            MetricFilterSpec(
                f"{s.key.replace('_', '-')}-by-{s.dimension_field}",
                pattern,
                s.metric,
                value,
                {
                    s.dimension: f"{root}.{s.dimension_field}",
                    "ModelVersion": f"{root}.{MODEL_VERSION_FIELD}",
                },
            )
        )
    return specs


def log_group_name(target: str, *, endpoint_name: str, cluster_name: str) -> str:
    """Where each target's container stdout lands (see the module docstring)."""
    if target == "sagemaker":
        return f"/aws/sagemaker/Endpoints/{endpoint_name}"
    return f"/aws/containerinsights/{cluster_name}/application"
