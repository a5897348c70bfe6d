"""Every policy document the program emits passes parliament, and every action exists."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import parliament
import pytest
import yaml

from infra import policies, rules
from infra.plan import StackPlan
from infra.rules.base import listify

EXCEPTIONS = Path(__file__).with_name("parliament.yaml")
ACCOUNT = "123456789012"
BUCKET = "arn:aws:s3:::mlship-dev-artifacts-123456789012-eu-west-1"
REPO = f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/mlship-dev"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@cache
def _exceptions() -> dict[str, list[dict[str, str]]]:
    # As `parliament --include-community-auditors` does: severities of community findings.
    community = Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    parliament.override_config(str(community))
    data = yaml.safe_load(EXCEPTIONS.read_text())
    return {issue: v["ignore_locations"] for issue, v in data.items()}


def _excused(finding: Any) -> bool:
    """parliament's ``ignore_locations`` semantics (regex full match on each location value;
    ``detail`` matches the finding's detail, where RESOURCE_STAR names its actions).

    Re-implemented because parliament 1.6's own filter drops patterns that come from YAML.
    """
    where = {**finding.location, "detail": finding.detail}
    for location in _exceptions().get(finding.issue, []):
        if all(
            re.fullmatch(pattern.lower(), str(where.get(key, "")).lower())
            for key, pattern in location.items()
        ):
            return True
    return False


def lint(doc: dict[str, Any]) -> list[str]:
    """Parliament findings (community auditors included) not excused by parliament.yaml."""
    _exceptions()
    result = parliament.analyze_policy_string(
        json.dumps(doc), include_community_auditors=True, config=parliament.config
    )
    return [
        f"{f.issue} {f.detail} {f.location}"
        for f in result.findings
        if parliament.enhance_finding(f).severity not in ("MUTE", "INFO") and not _excused(f)
    ]


@cache
def known_actions() -> frozenset[str]:
    return frozenset(
        f"{service['prefix']}:{p['privilege']}".lower()
        for service in parliament.iam_definition
        for p in service["privileges"]
    )


def unknown_actions(doc: dict[str, Any]) -> list[str]:
    missing = []
    for st in doc["Statement"]:
        for action in listify(st.get("Action")):
            if not fnmatch.filter(known_actions(), action.lower()):
                missing.append(action)
    return missing


def planned_documents(plan: StackPlan) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for r, kind, doc in rules.policy_documents(plan.resources):
        yield f"{r.type} {r.name}", kind, json.loads(doc) if isinstance(doc, str) else doc


def as_lintable(kind: str, doc: dict[str, Any], resource: str, plan: StackPlan) -> dict[str, Any]:
    """In a key policy "Resource": "*" means "this key" (and its aliases, for the alias actions):
    lint it with those ARNs instead, as parliament reads policies as identity policies.
    """
    if kind != "resource" or not resource.startswith(rules.KMS_KEY):
        return doc
    prefix = f"arn:aws:kms:{plan.config.region}:{ACCOUNT}"
    this_key = [f"{prefix}:key/00000000-0000-0000-0000-000000000000", f"{prefix}:alias/*"]
    return {
        **doc,
        "Statement": [
            {**st, "Resource": this_key if st.get("Resource") == "*" else st["Resource"]}
            for st in doc["Statement"]
        ],
    }


@pytest.mark.parametrize("stack", ["dev", "prod", "eks"])
def test_every_planned_policy_passes_parliament(plans: dict[str, StackPlan], stack: str) -> None:
    plan = plans[stack]
    documents = list(planned_documents(plan))
    kinds = {kind for _, kind, _ in documents}
    assert kinds == {"identity", "trust", "resource"}
    for resource, kind, doc in documents:
        assert not unknown_actions(doc), (resource, unknown_actions(doc))
        if kind == "trust":
            continue  # parliament has no model of trust policies; test_stacks checks them
        assert lint(as_lintable(kind, doc, resource, plan)) == [], resource


def test_serverless_and_byo_vpc_policies_pass_parliament(
    serverless_plan: StackPlan, byo_vpc_plan: StackPlan
) -> None:
    for plan in (serverless_plan, byo_vpc_plan):
        for resource, kind, doc in planned_documents(plan):
            assert not unknown_actions(doc), resource
            if kind != "trust":
                assert lint(as_lintable(kind, doc, resource, plan)) == [], resource


def test_parliament_flags_what_the_rules_forbid() -> None:
    """The linter is really on: a wildcard, an unknown action and a mismatched ARN fail."""
    assert lint(policies.document({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    assert lint(
        policies.document({"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": BUCKET})
    )
    assert lint(policies.document({"Effect": "Allow", "Action": "s3:GetObject", "Resource": REPO}))
    assert unknown_actions(policies.document({"Action": ["sagemaker:UpdateEndpointz"]}))


def test_policy_functions_pass_parliament_for_both_targets() -> None:
    docs = [
        policies.sagemaker_execution_policy(
            bucket_arn=BUCKET,
            repository_arn=REPO,
            key_arn=KEY,
            region="eu-west-1",
            account_id=ACCOUNT,
        ),
        policies.deploy_policy(
            bucket_arn=BUCKET,
            repository_arn=REPO,
            key_arn=KEY,
            region="eu-west-1",
            account_id=ACCOUNT,
            name_prefix="mlship-dev",
            execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlship-dev-sagemaker-execution",
            cluster_arn=None,
        ),
        policies.deploy_policy(
            bucket_arn=BUCKET,
            repository_arn=REPO,
            key_arn=KEY,
            region="eu-west-1",
            account_id=ACCOUNT,
            name_prefix="mlship-eks",
            execution_role_arn=None,
            cluster_arn=f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/mlship-eks-cluster",
        ),
        policies.service_pod_policy(bucket_arn=BUCKET, key_arn=KEY, secret_arn=None),
        policies.mlflow_server_policy(bucket_arn=BUCKET, key_arn=KEY),
        policies.eks_secrets_key_policy(key_arn=KEY),
        policies.tls_only_bucket_policy(bucket_arn=BUCKET),
    ]
    for doc in docs:
        assert lint(doc) == [], doc
        assert not unknown_actions(doc)


def test_execution_role_reads_models_and_writes_captures_only() -> None:
    doc = policies.sagemaker_execution_policy(
        bucket_arn=BUCKET, repository_arn=REPO, key_arn=KEY, region="eu-west-1", account_id=ACCOUNT
    )
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["ReadModel"] == {
        "Sid": "ReadModel",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": f"{BUCKET}/models/*",
    }
    assert by_sid["WriteCapture"]["Resource"] == f"{BUCKET}/capture/*"
    assert by_sid["WriteCapture"]["Action"] == ["s3:PutObject"]
    # The app's namespace and the one SageMaker's endpoint instance metrics (the CPU and memory
    # alarms) are published in; nothing else.
    assert by_sid["PutMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": ["mlship", "/aws/sagemaker/Endpoints"]}
    }
    stars = [st["Sid"] for st in doc["Statement"] if st["Resource"] == "*"]
    assert stars == ["EcrLogin", "PutMetrics"]
    assert "ReadRollbackAlarms" not in by_sid and "VpcNetworkInterfaces" not in by_sid


def test_execution_role_reads_exactly_its_rollback_alarms_and_manages_enis_in_a_vpc() -> None:
    doc = policies.sagemaker_execution_policy(
        bucket_arn=BUCKET,
        repository_arn=REPO,
        key_arn=KEY,
        region="eu-west-1",
        account_id=ACCOUNT,
        rollback_alarms=["mlship-dev-latency-p99", "mlship-dev-errors-5xx"],
        in_vpc=True,
    )
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    alarm = f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm"
    assert by_sid["ReadRollbackAlarms"] == {
        "Sid": "ReadRollbackAlarms",
        "Effect": "Allow",
        "Action": ["cloudwatch:DescribeAlarms"],
        "Resource": [f"{alarm}:mlship-dev-errors-5xx", f"{alarm}:mlship-dev-latency-p99"],
    }
    # The nine actions of the SageMaker guide's VPC policy, on "*" as the guide grants them.
    assert by_sid["VpcNetworkInterfaces"]["Action"] == sorted(
        [
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        ]
    )
    assert by_sid["VpcNetworkInterfaces"]["Resource"] == "*"
    assert lint(doc) == []
    assert not unknown_actions(doc)


def test_deploy_role_cannot_touch_infrastructure() -> None:
    doc = policies.deploy_policy(
        bucket_arn=BUCKET,
        repository_arn=REPO,
        key_arn=KEY,
        region="eu-west-1",
        account_id=ACCOUNT,
        name_prefix="mlship-prod",
        execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlship-prod-sagemaker-execution",
        cluster_arn=None,
    )
    actions = {a for st in doc["Statement"] for a in listify(st["Action"])}
    assert not {a for a in actions if a.startswith(("iam:Create", "iam:Put", "iam:Attach"))}
    assert "sagemaker:DeleteEndpoint" not in actions
    pass_role = next(st for st in doc["Statement"] if st["Sid"] == "PassExecutionRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    rollout = next(st for st in doc["Statement"] if st["Sid"] == "RollOutEndpoint")
    assert all(
        r.split(":", 5)[5].split("/", 1)[1].startswith("mlship-prod-") for r in rollout["Resource"]
    )
