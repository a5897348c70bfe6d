"""Drift triggers retraining: the drift alarm -> EventBridge -> GitHub repository_dispatch."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from core.errors import ConfigError
from infra import rules
from infra.components.retrain import DISPATCH_PATHS
from infra.config import StackConfig
from infra.mocks import MOCK_SECRET
from infra.plan import StackPlan
from infra.rules.iam import iam_allows, role_documents
from tests.infra.patterns import event_pattern_matches, select
from tests.infra.test_policies import lint, planned_documents, unknown_actions

CONNECTION = "aws:cloudwatch/eventConnection:EventConnection"
DESTINATION = "aws:cloudwatch/eventApiDestination:EventApiDestination"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
DRIFT_ALARM = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mlship-dev-drift-psi"


def one(plan: StackPlan, type_: str) -> dict[str, Any]:
    (found,) = plan.of_type(type_)
    return found.inputs


def alarm_event(arn: str, state: str, previous: str) -> dict[str, Any]:
    """ "CloudWatch Alarm State Change" as EventBridge delivers it (CloudWatch user guide,
    "Alarm events and EventBridge")."""
    name = arn.rsplit(":", 1)[-1]
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-30T14:00:00Z",
        "region": "eu-west-1",
        "resources": [arn],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed: 3 out of the last 5"},
            "previousState": {"value": previous, "reason": "..."},
        },
    }


def render(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """EventBridge's input transformer: each <name> becomes its path's value as JSON."""
    values = {name: json.dumps(select(event, path)) for name, path in paths.items()}
    return re.sub(r"<(\w+)>", lambda m: values[m.group(1)], template)


def test_route_calls_githubs_dispatch_endpoint_with_the_token_as_bearer(
    retrain_plan: StackPlan,
) -> None:
    destination = one(retrain_plan, DESTINATION)
    assert destination["invocationEndpoint"] == (
        "https://api.github.com/repos/example-org/mlship/dispatches"
    )
    assert destination["httpMethod"] == "POST"
    assert destination["invocationRateLimitPerSecond"] == 1
    connection = one(retrain_plan, CONNECTION)
    assert connection["authorizationType"] == "API_KEY"
    auth = connection["authParameters"]
    assert auth["apiKey"] == {"key": "Authorization", "value": f"Bearer {MOCK_SECRET}"}
    headers = {h["key"]: h["value"] for h in auth["invocationHttpParameters"]["headers"]}
    assert headers == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


def test_only_the_drift_alarm_going_into_alarm_dispatches(retrain_plan: StackPlan) -> None:
    (rule,) = [r for r in retrain_plan.of_type(RULE) if "drift" in r.inputs["name"]]
    pattern = json.loads(rule.inputs["eventPattern"])
    assert event_pattern_matches(pattern, alarm_event(DRIFT_ALARM, "ALARM", "OK"))
    assert event_pattern_matches(pattern, alarm_event(DRIFT_ALARM, "ALARM", "INSUFFICIENT_DATA"))
    assert not event_pattern_matches(pattern, alarm_event(DRIFT_ALARM, "OK", "ALARM"))
    other = DRIFT_ALARM.replace("drift-psi", "errors-5xx")
    assert not event_pattern_matches(pattern, alarm_event(other, "ALARM", "OK"))
    alarm_names = {a.inputs["name"] for a in retrain_plan.of_type(rules.ALARM)}
    assert DRIFT_ALARM.rsplit(":", 1)[-1] in alarm_names


def test_the_request_body_is_a_drift_repository_dispatch(retrain_plan: StackPlan) -> None:
    target = one(retrain_plan, TARGET)
    transformer = target["inputTransformer"]
    assert transformer["inputPaths"] == DISPATCH_PATHS
    body = json.loads(
        render(
            transformer["inputTemplate"],
            transformer["inputPaths"],
            alarm_event(DRIFT_ALARM, "ALARM", "OK"),
        )
    )
    # GitHub REST API, "Create a repository dispatch event": event_type (1-100 characters) and
    # client_payload with at most 10 top-level properties.
    assert body["event_type"] == "drift"
    assert body["client_payload"]["alarm"] == "mlship-dev-drift-psi"
    assert len(body["client_payload"]) <= 10
    assert target["retryPolicy"] == {"maximumEventAgeInSeconds": 3600, "maximumRetryAttempts": 3}


def test_the_rule_role_may_only_invoke_that_destination(retrain_plan: StackPlan) -> None:
    target = one(retrain_plan, TARGET)
    docs = role_documents(retrain_plan.resources, target["roleArn"])
    assert iam_allows(docs, "events:InvokeApiDestination", target["arn"])
    assert not iam_allows(docs, "events:InvokeApiDestination", target["arn"] + "-other")
    assert not iam_allows(docs, "events:PutEvents", "*")
    for resource, kind, doc in planned_documents(retrain_plan):
        assert not unknown_actions(doc), resource
        if kind == "identity":
            assert lint(doc) == [], resource
    assert retrain_plan.findings == []


def test_route_is_on_only_where_a_stack_enables_it(plans: dict[str, StackPlan]) -> None:
    for stack in ("dev", "eks"):  # off by default
        assert plans[stack].of_type(CONNECTION) == []
        assert plans[stack].of_type(DESTINATION) == []
    prod = plans["prod"]  # Pulumi.prod.yaml turns it on: it is in `mlship plan prod`
    assert one(prod, DESTINATION)["invocationEndpoint"].endswith("/example-org/mlship/dispatches")
    assert prod.findings == []


def test_route_needs_the_token_secret_and_a_repository() -> None:
    base = {
        "environment": "dev",
        "imageTag": "abc123",
        "githubRepository": "o/r",
        "retrainOnDrift": "true",
    }

    def parse(**extra: str) -> StackConfig:
        return StackConfig.parse(
            {**base, **extra}, project="mlship", stack="dev", region="eu-west-1"
        )

    with pytest.raises(ConfigError, match=r"^mlship:retrainTokenSecret is not set: create"):
        parse()
    with pytest.raises(ConfigError, match=r"^mlship:retrainRepository is 'nope'"):
        parse(retrainTokenSecret="s", retrainRepository="nope")
    signals = parse(retrainTokenSecret="mlship/gh").signals
    assert signals is not None and signals.retrain is not None
    assert signals.retrain.repository == "o/r"  # defaults to githubRepository
    with pytest.raises(ConfigError, match=r"^mlship:alarmDriftPsi is 'high'"):
        parse(retrainTokenSecret="s", alarmDriftPsi="high")
