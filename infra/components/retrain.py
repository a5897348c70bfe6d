"""Drift triggers retraining: the drift alarm's state change calls GitHub's
``repository_dispatch`` through an EventBridge API destination; no code of ours to host.

Route: CloudWatch alarm ``<prefix>-drift-psi`` -> EventBridge rule on "CloudWatch Alarm State
Change" into ALARM -> API destination ``POST https://api.github.com/repos/OWNER/REPO/dispatches``
with ``{"event_type": "drift", "client_payload": {...}}`` (GitHub REST API, "Create a
repository dispatch event") -> the retrain workflow (``on: repository_dispatch: types:
[drift]``). The token lives in the EventBridge connection, which keeps it in a Secrets Manager
secret it manages ("API destinations" and "Connections" in the EventBridge user guide); the
stack reads it once from the operator's secret ``mlship:retrainTokenSecret``.

Why it cannot storm: EventBridge emits an alarm event only when the state changes, the rule
matches only the change into ALARM, and the alarm needs several breaching minutes before it
fires and a return to OK before it can fire again, so one drift episode is one dispatch; the
API destination is also limited to one call a second (``InvocationRateLimitPerSecond``, the
minimum) and the target retries at most 3 times within an hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:retrain:DriftRetrain"
GITHUB_API = "https://api.github.com"
# GitHub REST API headers: the media type and the API version it documents for this endpoint.
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
EVENT_TYPE = "drift"


@dataclass(frozen=True)
class DriftRetrainArgs:
    """Inputs of :class:`DriftRetrain`.

    Attributes:
        name_prefix: Prefix of every AWS name.
        account_id: AWS account id (the role's trust guard).
        alarm_arn: The drift alarm whose change into ALARM dispatches.
        repository: GitHub owner/name receiving the dispatch.
        token_secret: Secrets Manager secret (name) holding the GitHub token.
        tags: Tags on every taggable child.
    """

    name_prefix: str
    account_id: pulumi.Input[str]
    alarm_arn: pulumi.Input[str]
    repository: str
    token_secret: str
    tags: dict[str, str] = field(default_factory=dict)


def alarm_pattern(alarm_arn: str) -> dict[str, object]:
    """EventBridge pattern: this alarm changing into ALARM (and nothing else)."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": [ALARM_STATE_CHANGE],
        "resources": [alarm_arn],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def dispatch_template() -> str:
    """The request body, from the event's fields (input transformer template)."""
    return (
        '{"event_type": "' + EVENT_TYPE + '", "client_payload": {"alarm": <alarm>, '
        '"reason": <reason>, "time": <time>}}'
    )


DISPATCH_PATHS = {
    "alarm": "$.detail.alarmName",
    "reason": "$.detail.state.reason",
    "time": "$.time",
}


class DriftRetrain(pulumi.ComponentResource):
    """Connection (token), API destination (rate-limited), rule, target and its role."""

    api_destination_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DriftRetrainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        token = aws.secretsmanager.get_secret_version_output(
            secret_id=args.token_secret, opts=pulumi.InvokeOutputOptions(parent=self)
        ).secret_string
        connection = aws.cloudwatch.EventConnection(
            f"{name}-connection",
            name=f"{args.name_prefix}-github",
            description=f"GitHub token for repository_dispatch to {args.repository}",
            authorization_type="API_KEY",
            auth_parameters=aws.cloudwatch.EventConnectionAuthParametersArgs(
                api_key=aws.cloudwatch.EventConnectionAuthParametersApiKeyArgs(
                    key="Authorization",
                    value=pulumi.Output.secret(pulumi.Output.concat("Bearer ", token)),
                ),
                invocation_http_parameters=(
                    aws.cloudwatch.EventConnectionAuthParametersInvocationHttpParametersArgs(
                        headers=[
                            aws.cloudwatch.EventConnectionAuthParametersInvocationHttpParametersHeaderArgs(
                                key=k, value=v, is_value_secret=False
                            )
                            for k, v in GITHUB_HEADERS.items()
                        ]
                    )
                ),
            ),
            opts=self._child,
        )
        destination = aws.cloudwatch.EventApiDestination(
            f"{name}-destination",
            name=f"{args.name_prefix}-github-dispatch",
            description=f"repository_dispatch ({EVENT_TYPE}) to {args.repository}",
            connection_arn=connection.arn,
            invocation_endpoint=f"{GITHUB_API}/repos/{args.repository}/dispatches",
            http_method="POST",
            invocation_rate_limit_per_second=1,
            opts=self._child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=f"{args.name_prefix}-drift-dispatch",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.dumps(
                    policies.service_assume_role("events.amazonaws.com", account)
                )
            ),
            tags=args.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=destination.arn.apply(
                lambda arn: policies.dumps(
                    policies.invoke_api_destination_policy(api_destination_arn=arn)
                )
            ),
            opts=self._child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            name=f"{args.name_prefix}-drift-retrain",
            description="The drift alarm going into ALARM starts the retrain workflow",
            event_pattern=pulumi.Output.from_input(args.alarm_arn).apply(
                lambda arn: json.dumps(alarm_pattern(arn), sort_keys=True)
            ),
            tags=args.tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=rule.name,
            target_id="github-dispatch",
            arn=destination.arn,
            role_arn=role.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths=DISPATCH_PATHS, input_template=dispatch_template()
            ),
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
            ),
            opts=self._child,
        )
        self.api_destination_arn = destination.arn
        self.register_outputs({"api_destination_arn": self.api_destination_arn})
