"""Documented SageMaker rules a deploy runs into: each mocks accept and AWS refuses.

Every rule cites the page that states it. They follow references by name: an endpoint names its
configuration, a configuration its models, a model its execution role, a role policy its role.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from infra.rules.base import (
    ALARM,
    ENDPOINT,
    ENDPOINT_CONFIG,
    Finding,
    Resource,
    by_name,
    dig,
    finding,
    of_type,
)
from infra.rules.iam import iam_allows, role_documents

MODEL = "aws:sagemaker/model:Model"
SCALING_TARGET = "aws:appautoscaling/target:Target"
BURSTABLE = re.compile(r"^ml\.t\d[a-z]*\.")
# The SageMaker guide's VPC policy for an execution role ("Give SageMaker AI Hosted Endpoints
# Access to Resources in Your Amazon VPC").
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


def endpoint_config(resources: Sequence[Resource], endpoint: Resource) -> Resource | None:
    """The endpoint configuration an endpoint names."""
    return by_name(resources, ENDPOINT_CONFIG).get(endpoint.inputs.get("endpointConfigName"))


def variants(config: Resource | None) -> list[dict[str, Any]]:
    """The production variants of an endpoint configuration (none for None)."""
    return list(config.inputs.get("productionVariants") or []) if config is not None else []


def models_of(resources: Sequence[Resource], endpoint: Resource) -> list[Resource]:
    """The models the variants of an endpoint's configuration run."""
    models = by_name(resources, MODEL)
    return [
        models[v.get("modelName")]
        for v in variants(endpoint_config(resources, endpoint))
        if v.get("modelName") in models
    ]


def alarm_arn(alarm: Resource, fallback_region: str, fallback_account: str) -> str:
    """An alarm's ARN. Its region and account are those of its SNS actions (an alarm notifies
    topics of its own region), else the fallbacks."""
    for action in alarm.inputs.get("alarmActions") or []:
        parts = str(action).split(":")
        if len(parts) >= 6 and parts[2] == "sns":
            fallback_region, fallback_account = parts[3], parts[4]
            break
    return (
        f"arn:aws:cloudwatch:{fallback_region}:{fallback_account}:alarm:{alarm.inputs.get('name')}"
    )


def rule_autoscaling_not_on_burstable(resources: Sequence[Resource]) -> Iterator[Finding]:
    """No scaling target on a variant of burstable instances (SageMaker refuses to register it)."""
    # SageMaker Developer Guide, "Configure model auto scaling with the console": registration
    # checks "You aren't registering a variant with an instance that is a burstable performance
    # instance such as T2"; SageMaker doesn't support auto scaling for burstable instances.
    endpoints = by_name(resources, ENDPOINT)
    for target in of_type(resources, SCALING_TARGET):
        match = re.match(
            r"^endpoint/([^/]+)/variant/([^/]+)$", str(target.inputs.get("resourceId"))
        )
        if target.inputs.get("serviceNamespace") != "sagemaker" or match is None:
            continue
        endpoint = endpoints.get(match.group(1))
        config = endpoint_config(resources, endpoint) if endpoint is not None else None
        for variant in variants(config):
            if variant.get("variantName") == match.group(2) and BURSTABLE.match(
                str(variant.get("instanceType"))
            ):
                yield finding(
                    "autoscaling_not_on_burstable",
                    target,
                    f"variant {match.group(2)} runs burstable {variant['instanceType']}, which "
                    "SageMaker does not auto scale",
                )


def rule_rollback_alarms_watch_the_endpoint(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every auto-rollback alarm exists in the stack and watches the endpoint it guards."""
    # SageMaker Developer Guide, "Auto-Rollback Configuration and Monitoring": auto-rollback only
    # works with CloudWatch alarms "that can monitor an endpoint"; AutoRollbackConfig: 1-10.
    alarms = by_name(resources, ALARM)
    for endpoint in of_type(resources, ENDPOINT):
        names = [
            a.get("alarmName")
            for a in dig(endpoint.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
            or []
        ]
        for name in names:
            alarm = alarms.get(name)
            if alarm is None:
                yield finding(
                    "rollback_alarms_watch_the_endpoint", endpoint, f"no alarm named {name}"
                )
            elif (alarm.inputs.get("dimensions") or {}).get("EndpointName") != endpoint.inputs.get(
                "name"
            ):
                yield finding(
                    "rollback_alarms_watch_the_endpoint",
                    endpoint,
                    f"rollback alarm {name} does not watch this endpoint",
                )


def rule_rollback_alarms_readable(resources: Sequence[Resource]) -> Iterator[Finding]:
    """The execution role may ``cloudwatch:DescribeAlarms`` every auto-rollback alarm."""
    # SageMaker Developer Guide, "Auto-Rollback Configuration and Monitoring": "Ensure that your
    # IAM execution role has permission to perform the cloudwatch:DescribeAlarms action on the
    # auto-rollback alarms you specify" (also in "CreateModel API: Execution Role Permissions").
    alarms = by_name(resources, ALARM)
    for endpoint in of_type(resources, ENDPOINT):
        names = [
            a.get("alarmName")
            for a in dig(endpoint.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
            or []
        ]
        for model in models_of(resources, endpoint):
            role_arn = str(model.inputs.get("executionRoleArn"))
            account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else "*"
            docs = role_documents(resources, role_arn)
            for name in names:
                alarm = alarms.get(name)
                arn = (
                    alarm_arn(alarm, "*", account)
                    if alarm is not None
                    else f"arn:aws:cloudwatch:*:{account}:alarm:{name}"
                )
                if not iam_allows(docs, "cloudwatch:DescribeAlarms", arn):
                    yield finding(
                        "rollback_alarms_readable",
                        model,
                        f"execution role cannot cloudwatch:DescribeAlarms {name}: SageMaker "
                        "cannot evaluate it, so no rollback happens",
                    )


def rule_vpc_model_manages_network_interfaces(
    resources: Sequence[Resource],
) -> Iterator[Finding]:
    """A model in a VPC has an execution role that may create its network interfaces."""
    # SageMaker Developer Guide, "Give SageMaker AI Hosted Endpoints Access to Resources in Your
    # Amazon VPC": the execution role of a model with VpcConfig needs these EC2 permissions.
    for model in of_type(resources, MODEL):
        if not dig(model.inputs, "vpcConfig", "subnets"):
            continue
        docs = role_documents(resources, model.inputs.get("executionRoleArn"))
        missing = [a for a in VPC_ACTIONS if not iam_allows(docs, a, "*")]
        if missing:
            yield finding(
                "vpc_model_manages_network_interfaces",
                model,
                f"execution role lacks {', '.join(missing)}",
            )
