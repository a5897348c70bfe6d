"""The ``rollout`` block: one spec for image changes and model changes, on either target.

``rolloutStrategy``/``rolloutPercent`` (``sagemaker.py``) remain the short form; ``rolloutSteps``
lists the traffic steps explicitly. ``rolloutChallengerDataKey`` marks a model change: the stack
serves that bundle beside ``modelDataKey`` and publishes the in-app policy (``core/flags.py``)
that routes to it. ``infra/rollout_spec.py`` compiles the spec for each target.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ConfigError
from infra.config.keys import Reader
from infra.config.sagemaker import Rollout

_HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class RolloutSpec:
    """Steps, the model change in progress, and the promotion thresholds."""

    steps: tuple[int, ...]
    challenger_data_key: str
    shadow_percent: int
    routing_header: str
    min_agreement_percent: int
    max_latency_delta_ms: int
    max_challenger_error_percent: int

    @property
    def model_change(self) -> bool:
        return bool(self.challenger_data_key)


def derived_steps(rollout: Rollout) -> tuple[int, ...]:
    """The steps ``rolloutStrategy`` and ``rolloutPercent`` mean: canary p -> (p,); linear p ->
    (p, 2p, ... below 100); all at once -> ()."""
    if rollout.strategy == "canary":
        return (rollout.percent,)
    if rollout.strategy == "linear":
        return tuple(range(rollout.percent, 100, rollout.percent))
    return ()


def parse_rollout_spec(
    r: Reader, rollout: Rollout, model_data_key: str, target: str
) -> RolloutSpec:
    """``rolloutSteps``, ``rolloutChallengerDataKey``, ``rolloutShadowPercent``,
    ``rolloutRoutingHeader`` and the promotion thresholds.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    steps = r.integers("rolloutSteps", 1, 99) or derived_steps(rollout)
    if list(steps) != sorted(set(steps)):
        raise ConfigError(
            f"mlship:rolloutSteps is {list(steps)}: steps must rise strictly (e.g. [10, 50])."
        )
    challenger = r.string("rolloutChallengerDataKey")
    if challenger and (
        not challenger.startswith("models/") or not challenger.endswith("model.tar.gz")
    ):
        raise ConfigError(
            f"mlship:rolloutChallengerDataKey is {challenger!r}: it must be a key under models/ "
            "ending in model.tar.gz, as mlship:modelDataKey."
        )
    if challenger == model_data_key:
        raise ConfigError(
            "mlship:rolloutChallengerDataKey is mlship:modelDataKey: the challenger must be "
            "another bundle. Set it to the new bundle's key, or to '' when none."
        )
    header = r.string("rolloutRoutingHeader")
    if not _HEADER_RE.match(header):
        raise ConfigError(
            f"mlship:rolloutRoutingHeader is {header!r}: give an HTTP header name (letters, "
            "digits, -), e.g. X-User-ID."
        )
    if challenger and target == "sagemaker":
        raise ConfigError(
            "mlship:rolloutChallengerDataKey is set on a SageMaker stack: the in-app split reads "
            "the challenger and the flags document from S3 at run time, and SageMaker runs the "
            "container with network isolation. On SageMaker a model change is an endpoint "
            "update: set mlship:modelDataKey to the new bundle and the rollout steps shift it "
            "(blue/green canary or linear, auto-rollback on the alarms)."
        )
    return RolloutSpec(
        steps=steps,
        challenger_data_key=challenger,
        shadow_percent=r.integer("rolloutShadowPercent", 0, 100),
        routing_header=header,
        min_agreement_percent=r.integer("rolloutMinAgreementPercent", 0, 100),
        max_latency_delta_ms=r.integer("rolloutMaxLatencyDeltaMs", 0, 60_000),
        max_challenger_error_percent=r.integer("rolloutMaxChallengerErrorPercent", 0, 100),
    )


def sagemaker_rollout(rollout: Rollout, steps: Sequence[int], instance_count: int = 0) -> Rollout:
    """The endpoint's traffic shifting for ``steps`` (checked against ``instance_count``).

    Raises:
        ConfigError: when SageMaker cannot shift traffic in those steps.
    """
    if not steps:
        return dataclasses.replace(rollout, strategy="all_at_once")
    if len(steps) == 1:
        if steps[0] > 50:
            raise ConfigError(
                f"mlship:rolloutSteps is {list(steps)}: a SageMaker canary is at most 50% of "
                "the fleet. Use a step of 1-50."
            )
        return _fits(
            dataclasses.replace(rollout, strategy="canary", percent=steps[0]), instance_count
        )
    step = steps[0]
    if list(steps) != list(range(step, 100, step)) or not 10 <= step <= 50:
        raise ConfigError(
            f"mlship:rolloutSteps is {list(steps)}: SageMaker shifts either one canary step or "
            f"equal linear steps of 10-50% (e.g. [25, 50, 75]). Use one of those on SageMaker."
        )
    return _fits(dataclasses.replace(rollout, strategy="linear", percent=step), instance_count)


def _fits(rollout: Rollout, instance_count: int) -> Rollout:
    if instance_count and instance_count * rollout.percent < 100:
        raise ConfigError(
            f"mlship:rolloutSteps: a {rollout.percent}% step of {instance_count} instance(s) is "
            "less than one instance, and SageMaker shifts whole instances. Raise "
            "mlship:instanceCount, or roll the model out in-app on EKS (any pod count)."
        )
    return rollout
