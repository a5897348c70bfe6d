"""The calls pulumi-aws makes for what runs without us: SageMaker pipelines (and the job
requests their steps become at run time), EventBridge Scheduler schedules, EventBridge rules,
targets, connections and API destinations, CloudWatch Logs metric filters, and Amazon Managed
Service for Prometheus (workspace, scraper, rules, alert manager)."""

from __future__ import annotations

import json
from typing import Any

from infra.api.request import Call, Converter, Inputs, call, tag_list
from infra.api.shapes import Problem
from infra.pipeline_definition import definition_problems, step_requests

# terraform-provider-aws sends id.UniqueId() ("terraform-" and 26 characters) as the
# CreatePipeline ClientRequestToken; a stand-in of the same shape.
CLIENT_TOKEN = "terraform-20261130000000000000000001"  # noqa: S105 (an idempotency token)


def _pipeline(i: Inputs, region: str) -> list[Call]:
    parallelism = i.get("parallelismConfiguration") or {}
    calls = [
        call(
            "sagemaker",
            "CreatePipeline",
            PipelineName=i.get("pipelineName"),
            PipelineDisplayName=i.get("pipelineDisplayName"),
            PipelineDescription=i.get("pipelineDescription"),
            PipelineDefinition=i.get("pipelineDefinition"),
            ClientRequestToken=CLIENT_TOKEN,
            RoleArn=i.get("roleArn"),
            ParallelismConfiguration={
                "MaxParallelExecutionSteps": parallelism.get("maxParallelExecutionSteps")
            }
            if parallelism
            else None,
            Tags=tag_list(i),
        )
    ]
    # What SageMaker Pipelines sends when a run reaches each job step (its Arguments with a
    # job name, parameters at their defaults): checked now rather than at 02:00.
    definition = i.get("pipelineDefinition")
    if isinstance(definition, str):
        for _, operation, request in step_requests(json.loads(definition)):
            calls.append(Call("sagemaker", operation, request))
    return calls


def pipeline_problems(c: Call) -> list[Problem]:
    """What the pipeline definition schema refuses in a CreatePipeline request."""
    body = c.params.get("PipelineDefinition")
    try:
        doc = json.loads(body) if isinstance(body, str) else None
    except json.JSONDecodeError as e:
        return [Problem("PipelineDefinition", f"not JSON: {e}")]
    if not isinstance(doc, dict):
        return [Problem("PipelineDefinition", "not a JSON object")]
    return [Problem("PipelineDefinition", p) for p in definition_problems(doc)]


def _schedule(i: Inputs, region: str) -> list[Call]:
    t = i.get("target") or {}
    window = i.get("flexibleTimeWindow") or {}
    sagemaker = t.get("sagemakerPipelineParameters")
    retry = t.get("retryPolicy") or {}
    target: dict[str, Any] = {
        "Arn": t.get("arn"),
        "RoleArn": t.get("roleArn"),
        "Input": t.get("input"),
        "SageMakerPipelineParameters": {
            "PipelineParameterList": [
                {"Name": p.get("name"), "Value": p.get("value")}
                for p in sagemaker.get("pipelineParameters") or []
            ]
        }
        if sagemaker is not None
        else None,
        "RetryPolicy": {
            "MaximumEventAgeInSeconds": retry.get("maximumEventAgeInSeconds"),
            "MaximumRetryAttempts": retry.get("maximumRetryAttempts"),
        }
        if retry
        else None,
    }
    return [
        call(
            "scheduler",
            "CreateSchedule",
            Name=i.get("name"),
            GroupName=i.get("groupName"),
            Description=i.get("description"),
            ScheduleExpression=i.get("scheduleExpression"),
            ScheduleExpressionTimezone=i.get("scheduleExpressionTimezone"),
            FlexibleTimeWindow={
                "Mode": window.get("mode"),
                "MaximumWindowInMinutes": window.get("maximumWindowInMinutes"),
            },
            Target=target,
            State=i.get("state"),
            KmsKeyArn=i.get("kmsKeyArn"),
        )
    ]


def _event_rule(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "events",
            "PutRule",
            Name=i.get("name"),
            EventPattern=i.get("eventPattern"),
            ScheduleExpression=i.get("scheduleExpression"),
            State=i.get("state"),
            Description=i.get("description"),
            RoleArn=i.get("roleArn"),
            EventBusName=i.get("eventBusName"),
            Tags=tag_list(i),
        )
    ]


def _event_target(i: Inputs, region: str) -> list[Call]:
    transformer = i.get("inputTransformer") or {}
    retry = i.get("retryPolicy") or {}
    return [
        call(
            "events",
            "PutTargets",
            Rule=i.get("rule"),
            EventBusName=i.get("eventBusName"),
            Targets=[
                {
                    "Id": i.get("targetId"),
                    "Arn": i.get("arn"),
                    "RoleArn": i.get("roleArn"),
                    "Input": i.get("input"),
                    "InputPath": i.get("inputPath"),
                    "InputTransformer": {
                        "InputPathsMap": transformer.get("inputPaths"),
                        "InputTemplate": transformer.get("inputTemplate"),
                    }
                    if transformer
                    else None,
                    "RetryPolicy": {
                        "MaximumRetryAttempts": retry.get("maximumRetryAttempts"),
                        "MaximumEventAgeInSeconds": retry.get("maximumEventAgeInSeconds"),
                    }
                    if retry
                    else None,
                }
            ],
        )
    ]


def _connection(i: Inputs, region: str) -> list[Call]:
    auth = i.get("authParameters") or {}
    api_key = auth.get("apiKey") or {}
    http = auth.get("invocationHttpParameters") or {}
    return [
        call(
            "events",
            "CreateConnection",
            Name=i.get("name"),
            Description=i.get("description"),
            AuthorizationType=i.get("authorizationType"),
            AuthParameters={
                "ApiKeyAuthParameters": {
                    "ApiKeyName": api_key.get("key"),
                    "ApiKeyValue": api_key.get("value"),
                }
                if api_key
                else None,
                "InvocationHttpParameters": {
                    "HeaderParameters": [
                        {
                            "Key": h.get("key"),
                            "Value": h.get("value"),
                            "IsValueSecret": h.get("isValueSecret"),
                        }
                        for h in http.get("headers") or []
                    ]
                    or None,
                }
                if http
                else None,
            },
        )
    ]


def _api_destination(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "events",
            "CreateApiDestination",
            Name=i.get("name"),
            Description=i.get("description"),
            ConnectionArn=i.get("connectionArn"),
            InvocationEndpoint=i.get("invocationEndpoint"),
            HttpMethod=i.get("httpMethod"),
            InvocationRateLimitPerSecond=i.get("invocationRateLimitPerSecond"),
        )
    ]


def _metric_filter(i: Inputs, region: str) -> list[Call]:
    t = i.get("metricTransformation") or {}
    return [
        call(
            "logs",
            "PutMetricFilter",
            logGroupName=i.get("logGroupName"),
            filterName=i.get("name"),
            filterPattern=i.get("pattern"),
            metricTransformations=[
                {
                    "metricName": t.get("name"),
                    "metricNamespace": t.get("namespace"),
                    "metricValue": t.get("value"),
                    "defaultValue": float(t["defaultValue"])
                    if t.get("defaultValue") not in (None, "")
                    else None,
                    "dimensions": t.get("dimensions") or None,
                    "unit": t.get("unit"),
                }
            ],
        )
    ]


def _amp_workspace(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "amp",
            "CreateWorkspace",
            alias=i.get("alias"),
            kmsKeyArn=i.get("kmsKeyArn"),
            tags=i.get("tags") or None,
        )
    ]


def _amp_scraper(i: Inputs, region: str) -> list[Call]:
    eks = (i.get("source") or {}).get("eks") or {}
    amp = (i.get("destination") or {}).get("amp") or {}
    return [
        call(
            "amp",
            "CreateScraper",
            alias=i.get("alias"),
            scrapeConfiguration={"configurationBlob": i.get("scrapeConfiguration")},
            source={
                "eksConfiguration": {
                    "clusterArn": eks.get("clusterArn"),
                    "subnetIds": eks.get("subnetIds"),
                    "securityGroupIds": eks.get("securityGroupIds"),
                }
            },
            destination={"ampConfiguration": {"workspaceArn": amp.get("workspaceArn")}},
            tags=i.get("tags") or None,
        )
    ]


def _amp_rules(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "amp",
            "CreateRuleGroupsNamespace",
            workspaceId=i.get("workspaceId"),
            name=i.get("name"),
            data=i.get("data"),
            tags=i.get("tags") or None,
        )
    ]


def _amp_alertmanager(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "amp",
            "CreateAlertManagerDefinition",
            workspaceId=i.get("workspaceId"),
            data=i.get("definition"),
        )
    ]


CONVERTERS: dict[str, Converter] = {
    "aws:amp/workspace:Workspace": _amp_workspace,
    "aws:amp/scraper:Scraper": _amp_scraper,
    "aws:amp/ruleGroupNamespace:RuleGroupNamespace": _amp_rules,
    "aws:amp/alertManagerDefinition:AlertManagerDefinition": _amp_alertmanager,
    "aws:sagemaker/pipeline:Pipeline": _pipeline,
    "aws:scheduler/schedule:Schedule": _schedule,
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:cloudwatch/eventTarget:EventTarget": _event_target,
    "aws:cloudwatch/eventConnection:EventConnection": _connection,
    "aws:cloudwatch/eventApiDestination:EventApiDestination": _api_destination,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": _metric_filter,
}
