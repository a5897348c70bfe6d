"""Check a plan's AWS API requests offline: the calls each resource becomes (``calls``),
validated against botocore's service models (``shapes``) and the provider's own, stricter limits.

``mlship plan`` runs :func:`validate_plan` next to the policy rules; a request AWS or the
provider would refuse is a finding, so ``pulumi up`` does not meet it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.api.automation import pipeline_problems
from infra.api.calls import NOT_CALLED, calls_for
from infra.api.request import Call
from infra.api.shapes import Problem, validate
from infra.rules.base import Finding, Resource

# Limits the Terraform AWS provider under pulumi-aws enforces before calling AWS, where they are
# narrower than the API's: (service, operation, member path) -> (minimum, maximum), each with the
# provider source that sets it.
PROVIDER_LIMITS: dict[tuple[str, str, str], tuple[int, int]] = {
    # terraform-provider-aws internal/service/sagemaker/endpoint.go, deployment_config
    # blue_green_update_policy maximum_execution_timeout_in_seconds: IntBetween(600, 14400)
    # (the SageMaker API itself accepts up to 28800).
    **{
        (
            "sagemaker",
            operation,
            "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds",
        ): (600, 14_400)
        for operation in ("CreateEndpoint", "UpdateEndpoint")
    },
}


# Values the API reference lists and the provider checks, where the model has no enum:
# (service, operation, member) -> allowed values, with where each list is written.
ALLOWED_VALUES: dict[tuple[str, str, str], frozenset[str]] = {
    # CloudWatch API Reference, PutMetricAlarm TreatMissingData ("Valid Values: breaching |
    # notBreaching | ignore | missing"); terraform-provider-aws internal/service/cloudwatch/
    # metric_alarm.go treat_missing_data: StringInSlice of the same four.
    ("cloudwatch", "PutMetricAlarm", "TreatMissingData"): frozenset(
        {"breaching", "notBreaching", "ignore", "missing"}
    ),
}


def _at(params: Any, path: str) -> Any:
    for part in path.split("."):
        params = params.get(part) if isinstance(params, dict) else None
    return params


def provider_problems(call: Call) -> list[Problem]:
    """The provider-side limits and documented value lists ``call`` breaks."""
    found = []
    for (service, operation, path), (low, high) in PROVIDER_LIMITS.items():
        value = _at(call.params, path)
        applies = (service, operation) == (call.service, call.operation) and value is not None
        if applies and not low <= value <= high:
            found.append(Problem(path, f"{value} is outside the provider's range {low}-{high}"))
    for (service, operation, path), allowed in ALLOWED_VALUES.items():
        value = _at(call.params, path)
        applies = (service, operation) == (call.service, call.operation) and value is not None
        if applies and value not in allowed:
            found.append(Problem(path, f"{value!r} is not one of {', '.join(sorted(allowed))}"))
    return found


# Documented request rules beyond the service model, per operation (the pipeline definition is
# a JSON string to botocore; its schema is checked here).
REQUEST_CHECKS = {("sagemaker", "CreatePipeline"): pipeline_problems}


def plan_calls(
    resources: Sequence[Resource], region: str
) -> tuple[list[tuple[Resource, Call]], list[Resource]]:
    """Every AWS request of the plan with its resource, and the AWS resources of types no
    converter knows (not counting :data:`NOT_CALLED`)."""
    calls: list[tuple[Resource, Call]] = []
    unknown: list[Resource] = []
    for r in resources:
        if not r.type.startswith("aws:") or r.type in NOT_CALLED:
            continue
        converted = calls_for(r.type, r.inputs, region)
        if converted is None:
            unknown.append(r)
        else:
            calls += [(r, call) for call in converted]
    return calls, unknown


def validate_plan(resources: Sequence[Resource], region: str) -> list[Finding]:
    """A finding per constraint any planned AWS request breaks, or per AWS resource type no
    converter knows (so a new type cannot slip past unchecked)."""
    calls, unknown = plan_calls(resources, region)
    findings = [
        Finding("api_request", f"{r.type} {r.name}", "no API calls known for this type", r.urn)
        for r in unknown
    ]
    for r, call in calls:
        check = REQUEST_CHECKS.get((call.service, call.operation))
        problems = validate(call.service, call.operation, call.params) + provider_problems(call)
        for problem in problems + (check(call) if check is not None else []):
            findings.append(
                Finding(
                    "api_request",
                    f"{r.type} {r.name}",
                    f"{call.service} {call.operation}: {problem}",
                    r.urn,
                )
            )
    return findings
