"""Model signals in CloudWatch: metric filters that turn the container's signal log lines into
metrics (per feature and model version, and one series across features for the alarms).

The log line contract: ``core/signals.py``; the filters and why metric filters rather than EMF:
``infra/signals.py``. The alarms on these metrics are :func:`signal_alarm_specs`, created (with
actions on the alert topic, and graphed on the dashboard) by the Monitoring component like every
other alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.monitoring import AlarmSpec
from infra.config.signals import Signals
from infra.signals import SIGNALS, SIGNALS_BY_KEY, filter_specs, namespace

RESOURCE_TYPE = "mlship:signals:ModelSignals"
DRIFT_ALARM_ROLE = "drift-psi"


def signal_alarm_specs(name_prefix: str, signals: Signals) -> list[AlarmSpec]:
    """Drift and data-quality alarms: the Maximum over every feature of the dimensionless
    series (one alarm sees all features). Missing data is not breaching: no traffic, no lines."""
    ns = namespace(name_prefix)

    def spec(role: str, key: str, threshold: float, description: str) -> AlarmSpec:
        return AlarmSpec(
            role,
            SIGNALS_BY_KEY[key].metric,
            ns,
            {},
            threshold=threshold,
            statistic="Maximum",
            description=description,
        )

    return [
        spec(
            DRIFT_ALARM_ROLE,
            "feature_psi",
            signals.drift_psi,
            f"a feature's PSI above {signals.drift_psi:g} (input drift)",
        ),
        spec(
            "missing-values",
            "missing_ratio",
            signals.missing_percent / 100,
            f"a feature missing in more than {signals.missing_percent}% of rows",
        ),
        spec(
            "out-of-range",
            "out_of_range_ratio",
            signals.out_of_range_percent / 100,
            f"a feature out of its training range in more than {signals.out_of_range_percent}% "
            "of rows",
        ),
    ]


@dataclass(frozen=True)
class ModelSignalsArgs:
    """Inputs of :class:`ModelSignals`.

    Attributes:
        name_prefix: Prefix of the filter names and of the metric namespace.
        target: ``sagemaker`` or ``eks`` (where the signal fields sit in a log event).
        log_group_name: The log group the container's stdout lands in.
        after: Resources whose creation makes that log group exist (the endpoint, the
            Kubernetes service): a metric filter needs its group.
    """

    name_prefix: str
    target: str
    log_group_name: str
    after: Sequence[pulumi.Resource] = ()


class ModelSignals(pulumi.ComponentResource):
    """One metric filter per signal and dimension set, on the serving log group."""

    metric_namespace: str

    def __init__(
        self, name: str, args: ModelSignalsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self.metric_namespace = namespace(args.name_prefix)
        for spec in filter_specs(args.target):
            aws.cloudwatch.LogMetricFilter(
                f"{name}-{spec.role}",
                name=f"{args.name_prefix}-{spec.role}",
                log_group_name=args.log_group_name,
                pattern=spec.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=spec.metric,
                    namespace=self.metric_namespace,
                    value=spec.value,
                    dimensions=spec.dimensions or None,
                    unit="None",
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
            )
        self.register_outputs({"metric_namespace": self.metric_namespace})


def signal_widgets(name_prefix: str, region: str) -> list[dict[str, Any]]:
    """Dashboard graphs of every signal per feature (or class) and model version: a CloudWatch
    ``SEARCH`` over the namespace ("Use search expressions in graphs"), so features the stack
    does not know still appear."""
    ns = namespace(name_prefix)
    widgets = []
    for i, s in enumerate(SIGNALS):
        query = f'{{{ns},{s.dimension},ModelVersion}} MetricName="{s.metric}"'
        widgets.append(
            {
                "type": "metric",
                "x": (i % 2) * 12,
                "y": (i // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": f"{s.metric} by {s.dimension.lower()} and model version",
                    "region": region,
                    "metrics": [[{"expression": f"SEARCH('{query}', 'Maximum', 300)", "id": "e1"}]],
                    "view": "timeSeries",
                    "period": 300,
                },
            }
        )
    return widgets
