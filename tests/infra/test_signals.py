"""Model signals: the log line contract reaches CloudWatch metrics and alarms on both targets.

The metric filters the stack creates are applied to sample log events with CloudWatch's JSON
filter-pattern syntax (``tests/infra/patterns.py``): the SageMaker event is the container's line
itself, the EKS event is Fluent Bit's record with the line's fields under ``log_processed``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from core.signals import DIMENSION_FIELD, EVENT
from infra import rules
from infra.components.signals import DRIFT_ALARM_ROLE
from infra.mocks import Recorded
from infra.plan import StackPlan
from infra.signals import SIGNALS, filter_specs
from tests.infra.patterns import PatternError, json_pattern_matches, metric_datum

METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"


def line(signal: str, value: Any, **fields: str) -> dict[str, Any]:
    return {"event": EVENT, "signal": signal, "value": value, "model_version": "7", **fields}


def as_event(target: str, fields: dict[str, Any]) -> str:
    """The log event CloudWatch stores for one line the container printed."""
    text = json.dumps(fields)
    if target == "sagemaker":
        return text
    # Container Insights' Fluent Bit: the raw line under "log", its fields merged under
    # "log_processed" (Merge_Log On, Merge_Log_Key log_processed), kubernetes metadata beside.
    return json.dumps(
        {
            "time": "2026-11-30T14:00:00.000Z",
            "stream": "stdout",
            "log": text,
            "log_processed": fields,
            "kubernetes": {"namespace_name": "mlship", "pod_name": "mlship-abc"},
        }
    )


def published(plan: StackPlan, message: str) -> list[tuple[str, float, dict[str, str]]]:
    """Every (metric, value, dimensions) the plan's metric filters publish for ``message``."""
    out = []
    for f in plan.of_type(METRIC_FILTER):
        t = f.inputs["metricTransformation"]
        datum = metric_datum(f.inputs["pattern"], t["value"], t.get("dimensions") or {}, message)
        if datum is not None:
            out.append((t["name"], *datum))
    return sorted(out, key=lambda d: (d[0], sorted(d[2])))


@pytest.mark.parametrize(("stack", "target"), [("prod", "sagemaker"), ("eks", "eks")])
def test_each_signal_line_becomes_its_metric_by_dimension_and_across_features(
    plans: dict[str, StackPlan], stack: str, target: str
) -> None:
    plan = plans[stack]
    psi = as_event(target, line("feature_psi", 0.31, feature="bill_length_mm"))
    assert published(plan, psi) == [
        ("FeaturePsi", 0.31, {}),
        ("FeaturePsi", 0.31, {"Feature": "bill_length_mm", "ModelVersion": "7"}),
    ]
    share = as_event(target, line("class_share", 0.44, **{"class": "Adelie"}))
    assert published(plan, share) == [
        ("ClassShare", 0.44, {}),
        ("ClassShare", 0.44, {"Class": "Adelie", "ModelVersion": "7"}),
    ]
    missing = as_event(target, line("missing_ratio", 0, feature="sex"))
    assert [m[:2] for m in published(plan, missing)] == [("MissingRatio", 0.0)] * 2
    namespaces = {
        f.inputs["metricTransformation"]["namespace"] for f in plan.of_type(METRIC_FILTER)
    }
    assert namespaces == {f"mlship-{stack}/ModelSignals"}


@pytest.mark.parametrize(("stack", "target"), [("prod", "sagemaker"), ("eks", "eks")])
def test_lines_outside_the_contract_publish_nothing(
    plans: dict[str, StackPlan], stack: str, target: str
) -> None:
    plan = plans[stack]
    for fields in (
        line("feature_psi", "0.31", feature="x"),  # value as a string
        line("feature_psi", -1, feature="x"),  # not a PSI
        line("feature_drift", 0.3, feature="x"),  # unknown signal
        {**line("feature_psi", 0.3, feature="x"), "event": "request"},  # another event
        {"signal": "feature_psi", "value": 0.3, "feature": "x"},  # no event field
    ):
        assert published(plan, as_event(target, fields)) == [], fields
    assert published(plan, "INFO: started server process") == []


def test_the_other_targets_event_shape_is_not_matched(plans: dict[str, StackPlan]) -> None:
    """The selector root is per target: an EKS record does not match SageMaker's filters."""
    psi = line("feature_psi", 0.5, feature="x")
    assert published(plans["prod"], as_event("eks", psi)) == []
    assert published(plans["eks"], as_event("sagemaker", psi)) == []


def test_filters_sit_on_the_log_group_the_container_writes_to(plans: dict[str, StackPlan]) -> None:
    groups = {
        stack: {f.inputs["logGroupName"] for f in plans[stack].of_type(METRIC_FILTER)}
        for stack in ("prod", "eks")
    }
    assert groups == {
        "prod": {"/aws/sagemaker/Endpoints/mlship-prod-endpoint"},
        "eks": {"/aws/containerinsights/mlship-eks-cluster/application"},
    }
    assert len(plans["prod"].of_type(METRIC_FILTER)) == 2 * len(SIGNALS)


def test_filters_cover_exactly_the_signals_of_the_line_contract_in_core() -> None:
    """One copy of the rule: the app writes by ``core.signals``, the filters select by it."""
    assert {s.key: s.dimension_field for s in SIGNALS} == DIMENSION_FIELD
    assert {spec.metric for spec in filter_specs("sagemaker")} == {s.metric for s in SIGNALS}


def test_pattern_matcher_follows_the_documented_syntax() -> None:
    """The CloudWatch guide's own JSON examples, so the matcher the tests rely on is right."""
    event = json.dumps(
        {
            "eventType": "UpdateTrail",
            "sourceIPAddress": "123.123.123.123",
            "bandwidth": 75,
            "latency": 50,
            "user": {"id": 1, "name": "John Doe"},
            "arrayKey": ["value", "another value"],
        }
    )
    assert json_pattern_matches('{ $.eventType = "UpdateTrail" }', event)
    assert json_pattern_matches('{ $.sourceIPAddress != "123.123.*" }', event) is False
    assert json_pattern_matches("{ $.bandwidth > 75 }", event) is False
    assert json_pattern_matches("{ $.latency >= 50 && $.bandwidth <= 75 }", event)
    assert json_pattern_matches('{ $.user.name = "John*" || $.latency > 100 }', event)
    assert json_pattern_matches('{ $.arrayKey[1] = "another value" }', event)
    assert json_pattern_matches('{ $.nothere = "x" }', event) is False
    assert json_pattern_matches("{ $.eventType > 1 }", event) is False  # a string is no number
    with pytest.raises(PatternError):
        json_pattern_matches("$.eventType = 1", event)


def test_every_filter_pattern_parses_and_reads_its_value_field() -> None:
    """CDK's and CloudWatch's rule: a metric value $.field must be matched by the pattern."""
    for target in ("sagemaker", "eks"):
        for spec in filter_specs(target):
            assert f"{spec.value} >= 0" in spec.pattern
            json_pattern_matches(spec.pattern, "{}")  # parses
            assert len(spec.dimensions) <= 3  # CloudWatch: at most three dimensions per filter


def signal_alarms(plan: StackPlan) -> dict[str, dict[str, Any]]:
    prefix = f"mlship-{plan.config.environment}"
    return {
        a.inputs["name"].removeprefix(f"{prefix}-"): a.inputs
        for a in plan.of_type(rules.ALARM)
        if a.inputs["namespace"] == f"{prefix}/ModelSignals"
    }


@pytest.mark.parametrize("stack", ["dev", "prod", "eks"])
def test_drift_and_data_quality_alarms_notify_the_topic_at_the_configured_thresholds(
    plans: dict[str, StackPlan], stack: str
) -> None:
    alarms = signal_alarms(plans[stack])
    assert set(alarms) == {DRIFT_ALARM_ROLE, "missing-values", "out-of-range"}
    assert alarms[DRIFT_ALARM_ROLE]["metricName"] == "FeaturePsi"
    assert alarms[DRIFT_ALARM_ROLE]["threshold"] == 0.25
    assert alarms["missing-values"]["threshold"] == 0.10
    assert alarms["out-of-range"]["threshold"] == 0.05
    for alarm in alarms.values():
        assert alarm.get("dimensions") in (None, {})  # the series across every feature
        assert alarm["statistic"] == "Maximum"
        assert alarm["actionsEnabled"] is True
        assert alarm["alarmActions"] and alarm["alarmActions"] == alarm["okActions"]
        assert alarm["treatMissingData"] == "notBreaching"


def test_dashboard_graphs_the_signal_alarms(plans: dict[str, StackPlan]) -> None:
    (dashboard,) = plans["prod"].of_type("aws:cloudwatch/dashboard:Dashboard")
    metrics = [
        w["properties"]["metrics"][0][:2]
        for w in json.loads(dashboard.inputs["dashboardBody"])["widgets"]
        if w["type"] == "metric"
    ]
    for name in ("FeaturePsi", "MissingRatio", "OutOfRangeRatio"):
        assert ["mlship-prod/ModelSignals", name] in metrics


def test_alarm_on_a_filtered_metric_needs_a_log_group_the_stack_writes(
    plans: dict[str, StackPlan],
) -> None:
    """The metric rule accepts a filter's metric only on the endpoint's (or cluster's) group."""
    resources = list(plans["prod"].resources)
    assert list(rules.rule_alarm_metric_is_published(resources)) == []
    moved = [
        Recorded(r.type, r.name, r.urn, r.parent, r.custom, {**r.inputs, "logGroupName": "/x"})
        if r.type == METRIC_FILTER
        else r
        for r in resources
    ]
    findings = list(rules.rule_alarm_metric_is_published(moved))
    assert {f.resource.rsplit(" ", 1)[-1] for f in findings} == {
        "mlship-prod-monitoring-drift-psi",
        "mlship-prod-monitoring-missing-values",
        "mlship-prod-monitoring-out-of-range",
    }


@pytest.mark.parametrize("stack", ["prod", "eks"])
def test_dashboard_searches_each_signal_by_exactly_its_filters_dimensions(
    plans: dict[str, StackPlan], stack: str
) -> None:
    """A SEARCH schema {namespace,dim,...} finds only metrics with exactly those dimension names
    (CloudWatch "Search expression syntax"), so each must equal a filter's dimension set."""
    plan = plans[stack]
    (dashboard,) = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    searches = {}
    for w in json.loads(dashboard.inputs["dashboardBody"])["widgets"]:
        for metric in w.get("properties", {}).get("metrics", []):
            expr = metric[0].get("expression", "") if isinstance(metric[0], dict) else ""
            m = re.match(r"^SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"', 'Maximum', 300\)$", expr)
            if m:
                namespace, *dims = m.group(1).split(",")
                searches[m.group(2)] = (namespace, frozenset(dims))
    filtered = {
        (f.inputs["metricTransformation"]["name"]): (
            f.inputs["metricTransformation"]["namespace"],
            frozenset(f.inputs["metricTransformation"]["dimensions"]),
        )
        for f in plan.of_type(METRIC_FILTER)
        if f.inputs["metricTransformation"].get("dimensions")
    }
    assert searches == filtered
    assert len(searches) == len(SIGNALS)
