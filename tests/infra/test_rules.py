"""Each policy rule passes on the committed stacks and fails on a plan broken its way."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra import rules
from infra.mocks import Recorded
from infra.plan import StackPlan, run_stack

Breaker = Callable[[list[Recorded]], None]


def first(resources: list[Recorded], type_: str, contains: str = "") -> Recorded:
    return next(r for r in resources if r.type == type_ and contains in r.name)


def edit_policy(r: Recorded, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(r.inputs[key])
    change(doc)
    r.inputs[key] = json.dumps(doc)


def drop(type_: str) -> Breaker:
    def breaker(resources: list[Recorded]) -> None:
        resources[:] = [r for r in resources if r.type != type_]

    return breaker


def _sse_to_aes(rs: list[Recorded]) -> None:
    sse = first(rs, rules.BUCKET_SSE).inputs["rules"][0]
    sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] = "AES256"


def _suspend_versioning(rs: list[Recorded]) -> None:
    first(rs, rules.BUCKET_VERSIONING).inputs["versioningConfiguration"]["status"] = "Suspended"


def _allow_public_policy(rs: list[Recorded]) -> None:
    first(rs, rules.BUCKET_PAB).inputs["blockPublicPolicy"] = False


def _drop_tls_condition(rs: list[Recorded]) -> None:
    edit_policy(
        first(rs, rules.BUCKET_POLICY),
        "policy",
        lambda d: d["Statement"][0].pop("Condition"),
    )


def _scan_off(rs: list[Recorded]) -> None:
    first(rs, rules.ECR_REPOSITORY).inputs["imageScanningConfiguration"]["scanOnPush"] = False


def _mutable(rs: list[Recorded]) -> None:
    first(rs, rules.ECR_REPOSITORY).inputs["imageTagMutability"] = "MUTABLE"


def _no_rotation(rs: list[Recorded]) -> None:
    first(rs, rules.KMS_KEY, "monitoring").inputs["enableKeyRotation"] = False


def _s3_star(rs: list[Recorded]) -> None:
    edit_policy(
        first(rs, rules.ROLE_POLICY, "execution"),
        "policy",
        lambda d: d["Statement"][0].update(Action=["s3:*"]),
    )


def _put_on_star(rs: list[Recorded]) -> None:
    edit_policy(
        first(rs, rules.ROLE_POLICY, "github"),
        "policy",
        lambda d: d["Statement"].append(
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"}
        ),
    )


def _actions_disabled(rs: list[Recorded]) -> None:
    first(rs, rules.ALARM, "errors-5xx").inputs["actionsEnabled"] = False


def _unwatched_endpoint(rs: list[Recorded]) -> None:
    for a in rs:
        if a.type == rules.ALARM:
            a.inputs["dimensions"] = {"EndpointName": "someone-else"}


def _no_rollback(rs: list[Recorded]) -> None:
    first(rs, rules.ENDPOINT).inputs["deploymentConfig"].pop("autoRollbackConfiguration")


def _capture_half(rs: list[Recorded]) -> None:
    first(rs, rules.ENDPOINT_CONFIG).inputs["dataCaptureConfig"]["initialSamplingPercentage"] = 50


def _no_secrets_encryption(rs: list[Recorded]) -> None:
    first(rs, rules.EKS_CLUSTER).inputs.pop("encryptionConfig")


def _root_container(rs: list[Recorded]) -> None:
    pod = first(rs, "kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    pod["securityContext"]["runAsNonRoot"] = False
    pod["containers"][0]["securityContext"].pop("runAsNonRoot")
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _unwatched_service(rs: list[Recorded]) -> None:
    for a in rs:
        if a.type == rules.ALARM:
            a.inputs["dimensions"].pop("Service", None)


def _burstable_variant(rs: list[Recorded]) -> None:
    first(rs, rules.ENDPOINT_CONFIG).inputs["productionVariants"][0]["instanceType"] = (
        "ml.t2.medium"
    )


def _unknown_rollback_alarm(rs: list[Recorded]) -> None:
    dc = first(rs, rules.ENDPOINT).inputs["deploymentConfig"]
    dc["autoRollbackConfiguration"]["alarms"][0]["alarmName"] = "mlship-prod-gone"


def _rollback_alarm_on_other_endpoint(rs: list[Recorded]) -> None:
    first(rs, rules.ALARM, "latency-p99").inputs["dimensions"]["EndpointName"] = "elsewhere"


def _drop_statement(sid: str) -> Breaker:
    def breaker(rs: list[Recorded]) -> None:
        edit_policy(
            first(rs, rules.ROLE_POLICY, "execution"),
            "policy",
            lambda d: d.update(Statement=[st for st in d["Statement"] if st.get("Sid") != sid]),
        )

    return breaker


def _metrics_only_in_app_namespace(rs: list[Recorded]) -> None:
    """The defect this rule was written for: PutMetricData limited to the app's namespace."""

    def change(doc: dict[str, Any]) -> None:
        st = next(st for st in doc["Statement"] if st["Sid"] == "PutMetrics")
        st["Condition"] = {"StringEquals": {"cloudwatch:namespace": "mlship"}}

    edit_policy(first(rs, rules.ROLE_POLICY, "execution"), "policy", change)


def _cpu_alarm_in_wrong_namespace(rs: list[Recorded]) -> None:
    first(rs, rules.ALARM, "-cpu").inputs["namespace"] = "AWS/SageMaker"


def _alarm_on_unknown_variant(rs: list[Recorded]) -> None:
    first(rs, rules.ALARM, "errors-4xx").inputs["dimensions"]["VariantName"] = "Blue"


def _drop_addon(name: str) -> Breaker:
    def breaker(rs: list[Recorded]) -> None:
        rs[:] = [
            r for r in rs if not (r.type == "aws:eks/addon:Addon" and r.inputs["addonName"] == name)
        ]

    return breaker


def _network_policy_off(rs: list[Recorded]) -> None:
    addon = next(
        r for r in rs if r.type == "aws:eks/addon:Addon" and r.inputs["addonName"] == "vpc-cni"
    )
    addon.inputs["configurationValues"] = json.dumps({"enableNetworkPolicy": "false"})


def _replicas_pinned(rs: list[Recorded]) -> None:
    first(rs, "kubernetes:apps/v1:Deployment").inputs["spec"]["replicas"] = 2


CASES: list[tuple[str, str, Breaker]] = [
    ("bucket_encrypted", "dev", _sse_to_aes),
    ("bucket_encrypted", "dev", drop(rules.BUCKET_SSE)),
    ("bucket_versioned", "dev", _suspend_versioning),
    ("bucket_public_access_blocked", "dev", _allow_public_policy),
    ("bucket_public_access_blocked", "dev", drop(rules.BUCKET_PAB)),
    ("bucket_tls_only", "dev", _drop_tls_condition),
    ("ecr_scan_on_push", "dev", _scan_off),
    ("ecr_immutable_tags", "dev", _mutable),
    ("kms_rotation", "dev", _no_rotation),
    ("iam_no_wildcard_actions", "dev", _s3_star),
    ("iam_no_writes_on_star", "dev", _put_on_star),
    ("alarm_actions_enabled", "dev", _actions_disabled),
    ("endpoint_has_alarms", "dev", _unwatched_endpoint),
    ("endpoint_has_alarms", "eks", _unwatched_service),
    ("endpoint_auto_rollback", "prod", _no_rollback),
    ("data_capture_in_prod", "prod", _capture_half),
    ("eks_secrets_encrypted", "eks", _no_secrets_encryption),
    ("workloads_non_root", "eks", _root_container),
    ("autoscaling_not_on_burstable", "dev", _burstable_variant),
    ("rollback_alarms_watch_the_endpoint", "prod", _unknown_rollback_alarm),
    ("rollback_alarms_watch_the_endpoint", "prod", _rollback_alarm_on_other_endpoint),
    ("rollback_alarms_readable", "prod", _drop_statement("ReadRollbackAlarms")),
    ("rollback_alarms_readable", "prod-vpc", _drop_statement("ReadRollbackAlarms")),
    ("alarm_metric_is_published", "dev", _metrics_only_in_app_namespace),
    ("alarm_metric_is_published", "prod", _cpu_alarm_in_wrong_namespace),
    ("alarm_metric_is_published", "prod", _alarm_on_unknown_variant),
    ("alarm_metric_is_published", "eks", _drop_addon("amazon-cloudwatch-observability")),
    ("vpc_model_manages_network_interfaces", "prod-vpc", _drop_statement("VpcNetworkInterfaces")),
    ("hpa_owns_replicas", "eks", _replicas_pinned),
    ("network_policy_enforced", "eks", _drop_addon("vpc-cni")),
    ("network_policy_enforced", "eks", _network_policy_off),
    ("hpa_has_metrics", "eks", _drop_addon("metrics-server")),
]


@pytest.mark.parametrize(("rule", "stack", "breaker"), CASES, ids=[c[0] for c in CASES])
def test_rule_fails_on_a_broken_plan(
    every_plan: dict[str, StackPlan], rule: str, stack: str, breaker: Breaker
) -> None:
    resources = copy.deepcopy(every_plan[stack].resources)
    assert not [f for f in rules.evaluate(resources) if f.rule == rule]
    breaker(resources)
    findings = [f for f in rules.evaluate(resources) if f.rule == rule]
    assert findings, rule
    assert all(f.message for f in findings)


def test_every_rule_has_a_failing_case() -> None:
    assert {c[0] for c in CASES} == {r.__name__.removeprefix("rule_") for r in rules.RULES}


def test_dev_capture_below_100_is_not_a_production_violation(plans: dict[str, StackPlan]) -> None:
    resources = copy.deepcopy(plans["dev"].resources)
    assert (
        first(resources, rules.ENDPOINT_CONFIG).inputs["dataCaptureConfig"][
            "initialSamplingPercentage"
        ]
        == 10
    )
    assert rules.rule_data_capture_in_prod.__name__ not in {
        f.rule for f in rules.evaluate(resources)
    }


def test_unscopable_actions_on_star_are_allowed_but_nothing_else(
    plans: dict[str, StackPlan],
) -> None:
    resources = copy.deepcopy(plans["dev"].resources)
    edit_policy(
        first(resources, rules.ROLE_POLICY, "github"),
        "policy",
        lambda d: d["Statement"].append(
            {"Effect": "Allow", "Action": ["sagemaker:ListEndpoints"], "Resource": "*"}
        ),
    )
    assert list(rules.rule_iam_no_writes_on_star(resources)) == []


def test_rules_run_on_policy_pack_resources(plans: dict[str, StackPlan]) -> None:
    """The policy pack hands rules ``PolicyResource`` objects; the adapter keeps them working."""
    from types import SimpleNamespace

    resources = copy.deepcopy(plans["prod"].resources)
    first(resources, rules.ECR_REPOSITORY).inputs["imageTagMutability"] = "MUTABLE"
    pack_view = rules.from_policy_resources(
        [
            SimpleNamespace(resource_type=r.type, name=r.name, urn=r.urn, props=r.inputs)
            for r in resources
        ]
    )
    findings = rules.evaluate(pack_view)
    assert [(f.rule, f.urn) for f in findings] == [
        ("ecr_immutable_tags", first(resources, rules.ECR_REPOSITORY).urn)
    ]
    assert rules.rule_id(rules.RULES[0]) == "bucket-encrypted"


@pytest.mark.parametrize("stack", ["prod-vpc", "serverless"])
def test_variant_plans_break_no_rule(every_plan: dict[str, StackPlan], stack: str) -> None:
    assert every_plan[stack].findings == []


def test_vpc_actions_on_star_only_in_a_role_sagemaker_assumes(
    sagemaker_vpc_plan: StackPlan,
) -> None:
    resources = copy.deepcopy(sagemaker_vpc_plan.resources)
    execution = first(resources, rules.ROLE_POLICY, "execution")
    statement = next(
        st
        for st in json.loads(execution.inputs["policy"])["Statement"]
        if st["Sid"] == "VpcNetworkInterfaces"
    )
    assert statement["Resource"] == "*"
    assert list(rules.rule_iam_no_writes_on_star(resources)) == []
    edit_policy(
        first(resources, rules.ROLE_POLICY, "github"),
        "policy",
        lambda d: d["Statement"].append(statement),
    )
    findings = list(rules.rule_iam_no_writes_on_star(resources))
    assert {f.message for f in findings} == {
        "allows ec2:CreateNetworkInterface on '*'",
        "allows ec2:CreateNetworkInterfacePermission on '*'",
        "allows ec2:DeleteNetworkInterface on '*'",
        "allows ec2:DeleteNetworkInterfacePermission on '*'",
    }
    assert {f.resource for f in findings} == {
        "aws:iam/rolePolicy:RolePolicy mlship-prod-github-policy"
    }


def test_iam_allows_reads_actions_resources_and_namespace_conditions() -> None:
    from infra.rules.iam import iam_allows

    doc = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": ["mlship", "/aws/x"]}},
            },
            {
                "Effect": "Allow",
                "Action": "cloudwatch:Describe*",
                "Resource": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mlship-*",
            },
        ]
    }
    put = "cloudwatch:PutMetricData"
    assert iam_allows([doc], put, "*", {"cloudwatch:namespace": "/aws/x"})
    assert not iam_allows([doc], put, "*", {"cloudwatch:namespace": "/aws/y"})
    assert not iam_allows([doc], put, "*")  # the condition key is unknown: not granted
    alarm = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:"
    assert iam_allows([doc], "cloudwatch:DescribeAlarms", alarm + "mlship-dev-cpu")
    assert not iam_allows([doc], "cloudwatch:DescribeAlarms", alarm + "other-cpu")
    deny = {"Statement": [{"Effect": "Deny", "Action": "cloudwatch:*", "Resource": "*"}]}
    assert not iam_allows([doc, deny], "cloudwatch:DescribeAlarms", alarm + "mlship-dev-cpu")


def test_fixed_fleet_of_burstable_instances_plans_without_scaling() -> None:
    plan = run_stack(
        "dev",
        overrides={"mlship:instanceType": "ml.t2.medium", "mlship:autoscalingMaxCapacity": "1"},
    )
    assert plan.findings == []
    assert plan.of_type("aws:appautoscaling/target:Target") == []
    variant = first(plan.resources, rules.ENDPOINT_CONFIG).inputs["productionVariants"][0]
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.t2.medium", 1)
