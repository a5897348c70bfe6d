"""The rollout action's order of operations around ``pulumi up`` (issue 10 items 5 and 6): the
fleet keeps its size, the live endpoint is verified, a failed verification rolls back, retired
models are pruned only after a good release; and every ``infra.rollout`` call it makes parses."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from infra.rollout import build_parser

ACTION = Path(__file__).resolve().parents[2] / ".github" / "actions" / "rollout" / "action.yml"


def steps() -> list[dict[str, Any]]:
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    result: list[dict[str, Any]] = data["runs"]["steps"]
    return result


def index(name_part: str) -> int:
    found = [i for i, s in enumerate(steps()) if name_part in s.get("name", "")]
    assert len(found) == 1, name_part
    return found[0]


def test_release_steps_run_in_order() -> None:
    order = [
        index("Configure the release"),
        index("Keep the fleet's current size"),
        index("pulumi up"),
        index("Verify the endpoint serves this release"),
        index("Post-deploy gate"),
        index("Roll back"),
        index("Prune retired"),
    ]
    assert order == sorted(order)


def test_fleet_size_is_read_before_the_update_and_set_as_the_instance_count() -> None:
    step = steps()[index("Keep the fleet's current size")]
    assert step["if"] == "steps.outputs.outputs.endpoint != ''"  # not on a first deployment
    script = step["run"]
    assert "python -m infra.rollout capacity" in script
    # An integer, as Pulumi.yaml declares it (a plain `config set` stores a string).
    assert 'pulumi config set --type int --stack "$STACK" mlship:instanceCount "$count"' in script
    up = steps()[index("pulumi up")]["run"]
    assert "config set" not in up  # nothing changes the configuration after the fleet size


def test_the_live_endpoint_is_compared_with_the_configuration_the_update_created() -> None:
    step = steps()[index("Verify the endpoint serves this release")]
    assert step["id"] == "verify"
    assert "if" not in step  # runs whenever pulumi up succeeded
    script = step["run"]
    assert "jq -r '.endpointConfigName // empty'" in script
    assert '--expected-config "$config"' in script


def test_a_failed_verification_or_gate_rolls_the_stack_back_and_verifies_again() -> None:
    step = steps()[index("Roll back")]
    condition = " ".join(step["if"].split())
    assert condition.startswith("failure() && ")
    assert "steps.verify.outcome == 'failure'" in condition
    assert "steps.smoke.outcome == 'failure'" in condition
    assert "steps.outputs.outputs.previous-tag != ''" in condition
    script = step["run"]
    assert script.index("pulumi up") < script.index("python -m infra.rollout verify")


def test_a_rollback_puts_the_previous_release_baseline_back_for_the_batch_check() -> None:
    """The release published its bundle's baseline where the scheduled batch check reads it;
    after a rollback the check must compare against the model that serves again."""
    publish = steps()[index("Publish the bundle")]
    rollback = steps()[index("Roll back")]
    assert "--baseline-prefix" in publish["run"]
    assert rollback["env"]["BASELINE_PREFIX"] == publish["env"]["BASELINE_PREFIX"]
    assert rollback["env"]["BUCKET"] == publish["env"]["BUCKET"]
    script = " ".join(rollback["run"].replace("\\\n", " ").split())
    assert 'if [ -n "$BASELINE_PREFIX" ]; then' in script
    assert (
        '.venv/bin/mlship publish --bundle "s3://$BUCKET/$PREVIOUS_KEY" --bucket "$BUCKET" '
        '--baseline-prefix "$BASELINE_PREFIX"'
    ) in script
    assert script.index("pulumi up") < script.index("mlship publish")
    # The call parses with the CLI it runs (an s3:// bundle is what publish_bundle downloads).
    from cli.main import build_parser as mlship_parser

    args = mlship_parser().parse_args(
        ["publish", "--bundle", "s3://b/models/v1/model.tar.gz", "--bucket", "b",
         "--baseline-prefix", "models/current/baseline/"]
    )  # fmt: skip
    assert args.bundle == "s3://b/models/v1/model.tar.gz"


def test_pruning_only_follows_a_verified_release() -> None:
    step = steps()[index("Prune retired")]
    assert step["if"] == "success() && steps.verify.outputs.endpoint != ''"
    assert step["env"]["CONFIG"] == "${{ steps.verify.outputs.config }}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_infra_rollout_call_parses() -> None:
    text = ACTION.read_text().replace("\\\n", " ")
    calls = re.findall(r"python -m infra\.rollout ([^\n]+)", text)
    assert {c.split()[0] for c in calls} == {"capacity", "verify", "prune"}
    subcommands = _subcommands(build_parser())
    for call in calls:
        words = shlex.split(re.sub(r'"\$\(.*?\)"', "X", call))
        command, flags = words[0], {w for w in words[1:] if w.startswith("--")}
        known = {o for a in subcommands[command]._actions for o in a.option_strings}
        required = {a.option_strings[0] for a in subcommands[command]._actions if a.required}
        assert flags <= known, call
        assert required <= flags, call
