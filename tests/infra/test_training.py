"""The training role and the deploy role's training and registry permissions, as planned."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import ConfigError
from infra import policies
from infra.plan import StackPlan, run_stack
from tests.infra.test_config import _parse
from tests.infra.test_policies import ACCOUNT, BUCKET, KEY, REPO, lint, unknown_actions

SERVER = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:mlflow-tracking-server/mlship-dev-mlflow"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _role_policy(plan: StackPlan, component: str) -> dict[str, Any]:
    found = [r for r in plan.of_type(ROLE_POLICY) if r.name == f"{component}-policy"]
    assert len(found) == 1, [r.name for r in plan.of_type(ROLE_POLICY)]
    doc = json.loads(found[0].inputs["policy"])
    assert isinstance(doc, dict)
    return doc


def _by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {st["Sid"]: st for st in doc["Statement"]}


def test_training_policy_reads_data_writes_staging_and_nothing_else() -> None:
    doc = policies.training_job_policy(
        bucket_arn=BUCKET, repository_arn=REPO, key_arn=KEY, region="eu-west-1", account_id=ACCOUNT
    )
    assert lint(doc) == [] and not unknown_actions(doc)
    st = _by_sid(doc)
    assert st["ReadData"]["Action"] == ["s3:GetObject"]
    assert st["ReadData"]["Resource"] == f"{BUCKET}/data/*"
    assert st["WriteStaging"]["Resource"] == f"{BUCKET}/staging/*"
    writes = [
        s["Resource"] for s in doc["Statement"] if any(a.startswith("s3:Put") for a in s["Action"])
    ]
    assert writes == [f"{BUCKET}/staging/*"]
    assert st["ListData"]["Condition"] == {"StringLike": {"s3:prefix": ["data/*", "staging/*"]}}
    assert st["GrantVolumeKey"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert [s["Sid"] for s in doc["Statement"] if s["Resource"] == "*"] == [
        "EcrLogin",
        "PutMetrics",
    ]
    assert st["WriteLogs"]["Resource"].endswith(":log-group:/aws/sagemaker/TrainingJobs*")
    services = {a.split(":")[0] for s in doc["Statement"] for a in s["Action"]}
    assert services == {"s3", "ecr", "logs", "cloudwatch", "kms"}


@pytest.mark.parametrize("stack", ["dev", "prod", "eks"])
def test_every_stack_has_a_training_role_sagemaker_assumes_for_this_account(
    plans: dict[str, StackPlan], stack: str
) -> None:
    plan = plans[stack]
    role = next(r for r in plan.of_type(ROLE) if r.name == f"mlship-{stack}-training-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert _role_policy(plan, f"mlship-{stack}-training") == policies.training_job_policy(
        bucket_arn=f"arn:aws:s3:::{plan.outputs['bucketName']}",
        repository_arn=_repository_arn(plan),
        key_arn=_by_sid(_role_policy(plan, f"mlship-{stack}-training"))["UseKey"]["Resource"],
        region=plan.config.region,
        account_id=ACCOUNT,
    )
    assert plan.outputs["trainingRoleArn"].endswith(f":role/mlship-{stack}-training")


def _repository_arn(plan: StackPlan) -> str:
    (repo,) = plan.of_type("aws:ecr/repository:Repository")
    return f"arn:aws:ecr:{plan.config.region}:{ACCOUNT}:repository/{repo.inputs['name']}"


def test_deploy_role_starts_training_jobs_and_passes_only_the_training_role(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["dev"]
    st = _by_sid(_role_policy(plan, "mlship-dev-github"))
    assert st["RunTrainingJobs"]["Resource"] == (
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:training-job/mlship-dev-*"
    )
    assert st["PassTrainingRole"]["Resource"] == plan.outputs["trainingRoleArn"]
    assert st["PassTrainingRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert st["ReadTrainingData"]["Action"] == ["s3:GetObject"]
    # dev has no registry: no MLflow permission at all.
    assert not any(a.startswith("sagemaker-mlflow:") for s in st.values() for a in s["Action"])


def test_a_stack_with_its_own_server_registers_deploys_and_promotes_on_it(
    serverless_plan: StackPlan,
) -> None:
    plan = serverless_plan
    st = _by_sid(_role_policy(plan, "mlship-dev-github"))
    assert st["MlflowRegistry"]["Resource"] == plan.outputs["mlflowTrackingServerArn"]
    assert set(st["MlflowRegistry"]["Action"]) == {
        *policies.MLFLOW_REGISTER,
        *policies.MLFLOW_DEPLOY,
        *policies.MLFLOW_PROMOTE,
    }
    assert (
        st["MlflowArtifacts"]["Resource"] == f"arn:aws:s3:::{plan.outputs['bucketName']}/mlflow/*"
    )


def test_a_stack_can_use_another_stacks_server_without_its_bucket() -> None:
    plan = run_stack("prod", overrides={"mlship:mlflowTrackingServerArn": SERVER})
    assert plan.outputs["mlflowTrackingServerArn"] == SERVER
    assert plan.of_type("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer") == []
    st = _by_sid(_role_policy(plan, "mlship-prod-github"))
    assert st["MlflowRegistry"]["Resource"] == SERVER
    assert "MlflowArtifacts" not in st


def test_tracking_server_choices_that_conflict_or_are_not_arns_are_refused() -> None:
    with pytest.raises(ConfigError, match="creates its registry or uses another stack's"):
        _parse({"mlflowServer": "true", "mlflowTrackingServerArn": SERVER})
    with pytest.raises(ConfigError, match="mlflowTrackingServerArn is 'mlship-dev-mlflow'"):
        _parse({"mlflowTrackingServerArn": "mlship-dev-mlflow"})
    assert _parse({"mlflowTrackingServerArn": SERVER}).mlflow_tracking_server_arn == SERVER
    assert _parse({}).spot_training is False
