"""Each policy rule passes on the committed stacks and fails on a plan broken its way."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra import rules
from infra.mocks import Recorded
from infra.plan import StackPlan

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
]


@pytest.mark.parametrize(("rule", "stack", "breaker"), CASES, ids=[c[0] for c in CASES])
def test_rule_fails_on_a_broken_plan(
    plans: dict[str, StackPlan], rule: str, stack: str, breaker: Breaker
) -> None:
    resources = copy.deepcopy(plans[stack].resources)
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
