"""The calls pulumi-aws makes for CloudWatch alarms and dashboards, log groups and SNS."""

from __future__ import annotations

from infra.api.request import Call, Converter, Inputs, call, tag_list


def _metric_alarm(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "cloudwatch",
            "PutMetricAlarm",
            AlarmName=i.get("name"),
            AlarmDescription=i.get("alarmDescription"),
            ActionsEnabled=i.get("actionsEnabled"),
            OKActions=i.get("okActions"),
            AlarmActions=i.get("alarmActions"),
            MetricName=i.get("metricName"),
            Namespace=i.get("namespace"),
            Statistic=i.get("statistic"),
            ExtendedStatistic=i.get("extendedStatistic"),
            Dimensions=[{"Name": k, "Value": v} for k, v in (i.get("dimensions") or {}).items()],
            Period=i.get("period"),
            EvaluationPeriods=i.get("evaluationPeriods"),
            DatapointsToAlarm=i.get("datapointsToAlarm"),
            # The API takes a double; the wire form carries whole numbers as ints.
            Threshold=float(i["threshold"]) if i.get("threshold") is not None else None,
            ComparisonOperator=i.get("comparisonOperator"),
            TreatMissingData=i.get("treatMissingData"),
            Tags=tag_list(i),
        )
    ]


def _dashboard(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "cloudwatch",
            "PutDashboard",
            DashboardName=i.get("dashboardName"),
            DashboardBody=i.get("dashboardBody"),
        )
    ]


def _log_group(i: Inputs, region: str) -> list[Call]:
    calls = [call("logs", "CreateLogGroup", logGroupName=i.get("name"), tags=i.get("tags") or None)]
    if i.get("retentionInDays"):
        calls.append(
            call(
                "logs",
                "PutRetentionPolicy",
                logGroupName=i.get("name"),
                retentionInDays=i.get("retentionInDays"),
            )
        )
    return calls


def _topic(i: Inputs, region: str) -> list[Call]:
    attributes = {"KmsMasterKeyId": i["kmsMasterKeyId"]} if i.get("kmsMasterKeyId") else None
    return [call("sns", "CreateTopic", Name=i.get("name"), Attributes=attributes, Tags=tag_list(i))]


def _topic_policy(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "sns",
            "SetTopicAttributes",
            TopicArn=i.get("arn"),
            AttributeName="Policy",
            AttributeValue=i.get("policy"),
        )
    ]


def _subscription(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "sns",
            "Subscribe",
            TopicArn=i.get("topic"),
            Protocol=i.get("protocol"),
            Endpoint=i.get("endpoint"),
        )
    ]


CONVERTERS: dict[str, Converter] = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:sns/topic:Topic": _topic,
    "aws:sns/topicPolicy:TopicPolicy": _topic_policy,
    "aws:sns/topicSubscription:TopicSubscription": _subscription,
}
