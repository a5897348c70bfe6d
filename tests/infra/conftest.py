"""Offline runs of the Pulumi program, one per stack, shared by every test in tests/infra."""

from __future__ import annotations

import pytest

from infra.plan import StackPlan, run_stack

STACKS = ("dev", "prod", "eks")
# An ACM certificate in the EKS stack's region (Pulumi.eks.yaml).
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
)


@pytest.fixture(scope="session")
def plans() -> dict[str, StackPlan]:
    """Every committed stack file, planned once per session (a run takes a few seconds)."""
    return {stack: run_stack(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def model_monitor_plan() -> StackPlan:
    """The prod stack with SageMaker Model Monitor's check before scoring."""
    return run_stack("prod", overrides={"mlship:batchInputCheck": "model-monitor"})


@pytest.fixture(scope="session")
def serverless_plan() -> StackPlan:
    """The dev stack switched to SageMaker Serverless, with an MLflow server."""
    return run_stack(
        "dev",
        overrides={
            "mlship:serverlessMemoryMb": "2048",
            "mlship:dataCapturePercent": "0",
            "mlship:mlflowServer": "true",
            "mlship:githubOidcProviderArn": (
                "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
            ),
        },
    )


@pytest.fixture(scope="session")
def byo_vpc_plan() -> StackPlan:
    """The EKS stack on existing subnets, with a public API endpoint and an API-keys secret."""
    return run_stack(
        "eks",
        overrides={
            "mlship:subnetIds": '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]',
            "mlship:securityGroupIds": '["sg-0123456789abcdef0"]',
            "mlship:clusterPublicAccessCidrs": '["203.0.113.0/24"]',
            "mlship:apiKeysSecret": "mlship-api-keys",
            "mlship:serviceInternal": "false",
            "mlship:serviceCertificateArn": CERTIFICATE_ARN,
        },
    )


@pytest.fixture(scope="session")
def sagemaker_vpc_plan() -> StackPlan:
    """The prod stack with its model in existing private subnets (SageMaker in a VPC)."""
    return run_stack(
        "prod",
        overrides={
            "mlship:subnetIds": '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]',
            "mlship:securityGroupIds": '["sg-0123456789abcdef0"]',
        },
    )


@pytest.fixture(scope="session")
def every_plan(
    plans: dict[str, StackPlan], sagemaker_vpc_plan: StackPlan, serverless_plan: StackPlan
) -> dict[str, StackPlan]:
    """The committed stacks plus the VPC and serverless variants, by name."""
    return {**plans, "prod-vpc": sagemaker_vpc_plan, "serverless": serverless_plan}


@pytest.fixture(scope="session")
def retrain_plan() -> StackPlan:
    """The dev stack with the drift -> retrain route on."""
    return run_stack(
        "dev",
        overrides={
            "mlship:retrainOnDrift": "true",
            "mlship:retrainTokenSecret": "mlship/github-dispatch",
        },
    )
