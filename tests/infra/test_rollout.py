"""infra/rollout.py against SageMaker on a real moto server: the live endpoint checked after
``pulumi up`` (issue 10 items 5 and 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from infra.plan import ROOT
from infra.rollout import (
    RolloutError,
    config_from_pulumi_json,
    live_instance_count,
    main,
    prune_retired,
    release_instance_count,
    verify_endpoint_config,
)

ROLE = "arn:aws:iam::123456789012:role/mlship-prod-sagemaker-execution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-prod:abc"
ENDPOINT = "mlship-prod-endpoint"


def sagemaker() -> Any:
    return boto3.client("sagemaker")


def release(sm: Any, suffix: str, count: int = 2, stack: str = "prod") -> str:
    """A model and an endpoint configuration as Pulumi auto-names them; returns the config."""
    model = f"mlship-{stack}-sagemaker-model-{suffix}"
    config = f"mlship-{stack}-sagemaker-config-{suffix}"
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    return config


def pulumi_config_json(stack: str) -> dict[str, Any]:
    """``pulumi config --json`` of a committed stack file: strings as values, lists as
    objectValue (with their JSON text as value), as the Pulumi CLI prints them."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, list):
            out[key] = {"value": json.dumps(value), "objectValue": value, "secret": False}
        else:
            out[key] = {"value": str(value).lower() if isinstance(value, bool) else str(value)}
    return out


def test_verify_passes_when_the_endpoint_serves_the_new_configuration(aws: str) -> None:
    sm = sagemaker()
    new = release(sm, "b2c3d4e")
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=new)
    verify_endpoint_config(sm, ENDPOINT, new)


def test_verify_fails_when_sagemaker_kept_the_previous_configuration(aws: str) -> None:
    """The provider's blind spot: the update 'succeeded' but the endpoint serves the old one."""
    sm = sagemaker()
    old, new = release(sm, "a1b2c3d"), release(sm, "b2c3d4e")
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=old)
    with pytest.raises(RolloutError) as excinfo:
        verify_endpoint_config(sm, ENDPOINT, new)
    message = str(excinfo.value)
    assert message.startswith(f"endpoint {ENDPOINT} serves {old}, not {new}: SageMaker rolled")
    assert "#48997" in message and "previous release" in message


def test_verify_fails_when_the_endpoint_is_missing(aws: str) -> None:
    with pytest.raises(RolloutError, match="does not exist after pulumi up"):
        verify_endpoint_config(sagemaker(), ENDPOINT, "mlship-prod-sagemaker-config-b2c3d4e")


def _endpoint(status: str, config: str, reason: str | None = None) -> dict[str, Any]:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    response = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if reason is not None:
        response["FailureReason"] = reason
    return response


def test_verify_waits_through_a_rollback_then_fails(aws: str) -> None:
    """moto endpoints are InService at once; botocore's Stubber (responses checked against the
    service model) plays the statuses of a rollback."""
    sm = sagemaker()
    old, new = "mlship-prod-sagemaker-config-a1b2c3d", "mlship-prod-sagemaker-config-b2c3d4e"
    sleeps: list[float] = []
    with Stubber(sm) as stub:
        for status in ("Updating", "RollingBack"):
            stub.add_response(
                "describe_endpoint", _endpoint(status, new), {"EndpointName": ENDPOINT}
            )
        stub.add_response(
            "describe_endpoint",
            _endpoint("InService", old, "alarm mlship-prod-errors-5xx fired"),
            {"EndpointName": ENDPOINT},
        )
        with pytest.raises(
            RolloutError, match=r"rolled the update back \(alarm mlship-prod-errors"
        ):
            verify_endpoint_config(sm, ENDPOINT, new, poll_seconds=7, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert sleeps == [7, 7]


def test_verify_gives_up_on_an_endpoint_that_keeps_updating(aws: str) -> None:
    sm = sagemaker()
    ticks = iter(range(0, 100, 10))
    with Stubber(sm) as stub:
        for _ in range(4):
            stub.add_response(
                "describe_endpoint", _endpoint("Updating", "c-b2c3d4e"), {"EndpointName": ENDPOINT}
            )
        with pytest.raises(RolloutError, match="is Updating after pulumi up"):
            verify_endpoint_config(
                sm,
                ENDPOINT,
                "c-b2c3d4e",
                timeout_seconds=25,
                sleep=lambda _: None,
                clock=lambda: float(next(ticks)),
            )


def test_live_count_is_what_autoscaling_chose(aws: str) -> None:
    sm = sagemaker()
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=release(sm, "a1b2c3d"))
    assert live_instance_count(sm, ENDPOINT, "AllTraffic") == 2
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 6}],
    )
    assert live_instance_count(sm, ENDPOINT, "AllTraffic") == 6
    assert live_instance_count(sm, "mlship-prod-other", "AllTraffic") is None


def test_release_count_keeps_the_fleet_within_the_stack_bounds() -> None:
    prod = config_from_pulumi_json(pulumi_config_json("prod"), project="mlship", stack="prod")
    assert (prod.autoscaling.min_capacity, prod.autoscaling.max_capacity) == (2, 6)
    assert release_instance_count(6, prod) == 6  # scaled out: the new fleet starts at 6
    assert release_instance_count(9, prod) == 6  # above a lowered maximum
    assert release_instance_count(1, prod) == 2
    assert release_instance_count(None, prod) == prod.instance_count == 2  # first deployment


def test_capacity_command_prints_the_live_count(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = sagemaker()
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=release(sm, "a1b2c3d"))
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 5}],
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps(pulumi_config_json("prod")))
    argv = ["capacity", "--config-json", str(config), "--stack", "prod", "--endpoint", ENDPOINT]
    assert main(argv, client=sm) == 0
    assert capsys.readouterr().out == "5\n"


def test_verify_command_exits_1_with_the_reason(
    aws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = sagemaker()
    old, new = release(sm, "a1b2c3d"), release(sm, "b2c3d4e")
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=old)
    assert main(["verify", "--endpoint", ENDPOINT, "--expected-config", new], client=sm) == 1
    assert capsys.readouterr().err.startswith(f"error: endpoint {ENDPOINT} serves {old}")
    assert main(["verify", "--endpoint", ENDPOINT, "--expected-config", old], client=sm) == 0


def test_prune_keeps_the_live_current_and_newest_releases(aws: str) -> None:
    sm = sagemaker()
    suffixes = ["a000001", "a000002", "a000003", "a000004", "a000005"]
    configs = [release(sm, s) for s in suffixes]
    release(sm, "zzzzzzz", stack="dev")  # another family (name prefix) is never touched
    sm.create_model(
        ModelName="other-model-a000001", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}
    )
    # SageMaker rolled back to the first release; the stack's current one is the last.
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=configs[0])
    deleted = prune_retired(sm, ENDPOINT, configs[-1], keep=2)
    remaining = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    models = {m["ModelName"] for m in sm.list_models()["Models"]}
    # Kept: live (1), current (5), the two newest (4, 5) and the other family.
    assert remaining == {configs[0], configs[3], configs[4], "mlship-dev-sagemaker-config-zzzzzzz"}
    assert models == {
        "mlship-prod-sagemaker-model-a000001",
        "mlship-prod-sagemaker-model-a000004",
        "mlship-prod-sagemaker-model-a000005",
        "mlship-dev-sagemaker-model-zzzzzzz",
        "other-model-a000001",
    }
    retired_models = ["mlship-prod-sagemaker-model-a000002", "mlship-prod-sagemaker-model-a000003"]
    assert sorted(deleted) == sorted([configs[1], configs[2], *retired_models])
