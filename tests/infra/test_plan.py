"""`mlship plan`: the offline plan through the CLI, as text and JSON, and its exit codes."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

import infra.plan
from cli.main import main as mlship
from core.errors import ConfigError
from infra import rules
from infra.mocks import Recorded


def test_plan_dev_prints_the_tree_and_says_it_is_offline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert mlship(["plan", "dev"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OFFLINE PLAN")
    assert "cloud computes" in out
    assert "└─ aws:appautoscaling/policy:Policy mlship-dev-sagemaker-scaling-policy" in out
    assert "aws:sagemaker/endpoint:Endpoint mlship-dev-sagemaker-endpoint" in out
    assert f"Policies: {len(rules.RULES)} rules and the API requests checked" in out
    assert "service models, 0 violation(s)" in out
    assert len(rules.RULES) == 23


def test_plan_json_lists_resources_outputs_and_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert mlship(["plan", "prod", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["offline"] is True
    assert "unknown" in data["notice"]
    assert data["counts"]["total"] == len(data["resources"])
    assert data["findings"] == []
    assert data["rules"] == [r.__name__.removeprefix("rule_") for r in rules.RULES] + [
        "api_request"
    ]
    assert data["outputs"]["endpointName"] == "mlship-prod-endpoint"
    protected = {r["name"] for r in data["resources"] if r["protect"]}
    assert "mlship-prod-artifacts-bucket" in protected


def test_plan_exits_non_zero_on_a_violation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = rules.evaluate

    def without_rotation(resources: list[Recorded]) -> list[rules.Finding]:
        for r in resources:
            if r.type == rules.KMS_KEY:
                r.inputs["enableKeyRotation"] = False
        return real(resources)

    monkeypatch.setattr(infra.plan, "evaluate", without_rotation)
    assert mlship(["plan", "dev"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION kms_rotation: aws:kms/key:Key mlship-dev-artifacts-key" in out


def test_plan_of_an_unknown_stack_is_a_named_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert mlship(["plan", "staging"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no stack file Pulumi.staging.yaml")
    assert "dev" in err


def test_bad_stack_value_is_a_named_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = infra.plan.read_stack_config

    def broken(stack: str, root: object = infra.plan.ROOT) -> dict[str, str]:
        return {**real(stack), "mlship:instanceType": "m5.large"}

    monkeypatch.setattr(infra.plan, "read_stack_config", broken)
    assert mlship(["plan", "dev"]) == 1
    assert capsys.readouterr().err.startswith("error: mlship:instanceType is 'm5.large'")


def test_a_plan_after_a_config_error_and_a_new_event_loop_finishes() -> None:
    """A config error used to leave the root stack's registration pending in Pulumi's
    process-wide output tracking; the next plan on another event loop (after any
    ``asyncio.run``, or in another thread) waited for it forever."""
    with pytest.raises(ConfigError, match="instanceType"):
        infra.plan.run_stack("dev", overrides={"mlship:instanceType": "m5.large"})

    async def nothing() -> None:
        return None

    asyncio.run(nothing())  # leaves this thread without an event loop
    plans: list[infra.plan.StackPlan] = []
    worker = threading.Thread(target=lambda: plans.append(infra.plan.run_stack("dev")), daemon=True)
    worker.start()
    worker.join(timeout=120)  # a hang detector: the plan takes seconds
    assert plans, "the plan after a failed one never finished"
    assert plans[0].findings == []
