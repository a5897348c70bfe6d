"""SageMaker settings: instances or serverless, autoscaling bounds, blue/green rollouts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.errors import ConfigError
from core.instances import ENDPOINT, check_instance_type
from infra.config.keys import Reader

Strategy = Literal["all_at_once", "canary", "linear"]
# Burstable performance families (ml.t2, ml.t3, ...): SageMaker refuses to auto scale them.
BURSTABLE_RE = re.compile(r"^ml\.t\d[a-z]*\.")
# The provider's range for MaximumExecutionTimeoutInSeconds (terraform-provider-aws,
# internal/service/sagemaker/endpoint.go: validation.IntBetween(600, 14400)); botocore's
# SageMaker model has the same bounds.
ROLLOUT_TIMEOUT_SECONDS = (600, 14_400)


@dataclass(frozen=True)
class Serverless:
    """SageMaker Serverless Inference sizing (instead of instances)."""

    memory_mb: int
    max_concurrency: int


@dataclass(frozen=True)
class Autoscaling:
    """Scaling bounds and targets (SageMaker variant instances or Kubernetes pods)."""

    min_capacity: int
    max_capacity: int
    target_invocations: int
    target_cpu_percent: int

    @property
    def scales(self) -> bool:
        """False for a fixed fleet (minimum = maximum): nothing to register for scaling."""
        return self.max_capacity > self.min_capacity


@dataclass(frozen=True)
class Rollout:
    """Blue/green traffic shifting for endpoint updates, with auto-rollback on alarms."""

    strategy: Strategy
    percent: int
    bake_seconds: int
    timeout_seconds: int
    termination_wait_seconds: int


@dataclass(frozen=True)
class Capacity:
    """What serves the model: instance type and count, or serverless; and how it scales."""

    instance_type: str
    instance_count: int
    serverless: Serverless | None
    autoscaling: Autoscaling


def parse_capacity(r: Reader, *, target: str) -> Capacity:
    """``instanceType``, ``instanceCount``, ``serverless*`` and ``autoscaling*``.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    instance_type = check_instance_type(r.string("instanceType"), "mlship:instanceType", ENDPOINT)
    instance_count = r.integer("instanceCount", 1, 100)
    memory = r.integer("serverlessMemoryMb", 0, 6144)
    serverless = None
    if memory:
        if memory < 1024 or memory % 1024:
            raise ConfigError(
                f"mlship:serverlessMemoryMb is {memory}: use 1024, 2048, ... 6144 "
                "(or 0 for instances)."
            )
        serverless = Serverless(memory, r.integer("serverlessMaxConcurrency", 1, 200))
    autoscaling = Autoscaling(
        min_capacity=r.integer("autoscalingMinCapacity", 1, 100),
        max_capacity=r.integer("autoscalingMaxCapacity", 1, 100),
        target_invocations=r.integer("autoscalingTargetInvocations", 1, 1_000_000),
        target_cpu_percent=r.integer("autoscalingTargetCpu", 10, 95),
    )
    if autoscaling.max_capacity < autoscaling.min_capacity:
        raise ConfigError(
            f"mlship:autoscalingMaxCapacity ({autoscaling.max_capacity}) is below "
            f"mlship:autoscalingMinCapacity ({autoscaling.min_capacity}): raise the maximum."
        )
    if (
        target == "sagemaker"
        and serverless is None
        and not (autoscaling.min_capacity <= instance_count <= autoscaling.max_capacity)
    ):
        raise ConfigError(
            f"mlship:instanceCount ({instance_count}) is outside the autoscaling range "
            f"{autoscaling.min_capacity}-{autoscaling.max_capacity}: set it between "
            "mlship:autoscalingMinCapacity and mlship:autoscalingMaxCapacity."
        )
    if (
        target == "sagemaker"
        and serverless is None
        and autoscaling.scales
        and BURSTABLE_RE.match(instance_type)
    ):
        # "Configure model auto scaling with the console": registering a variant as a scalable
        # target fails for burstable performance instances such as T2.
        raise ConfigError(
            f"mlship:instanceType is {instance_type!r}, a burstable instance, and "
            f"mlship:autoscalingMaxCapacity ({autoscaling.max_capacity}) exceeds "
            f"mlship:autoscalingMinCapacity ({autoscaling.min_capacity}): SageMaker does not "
            "auto scale burstable instances (T2, T3 ...), so the scaling target cannot be "
            "registered. Use a non-burstable type such as ml.m5.large or ml.c5.large, or a "
            "fixed fleet (both capacities equal to mlship:instanceCount)."
        )
    return Capacity(instance_type, instance_count, serverless, autoscaling)


def parse_rollout(r: Reader, instance_count: int, serverless: Serverless | None) -> Rollout:
    """``rollout*``: strategy, step size, bake, timeout and termination wait.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    rollout = Rollout(
        strategy=r.choice("rolloutStrategy", ("all_at_once", "canary", "linear")),
        percent=r.integer("rolloutPercent", 1, 50),
        bake_seconds=r.integer("rolloutBakeSeconds", 0, 3600),
        timeout_seconds=r.integer("rolloutTimeoutSeconds", *ROLLOUT_TIMEOUT_SECONDS),
        termination_wait_seconds=r.integer("rolloutTerminationWaitSeconds", 0, 3600),
    )
    if rollout.strategy == "linear" and rollout.percent < 10:
        raise ConfigError(
            f"mlship:rolloutPercent is {rollout.percent}: a linear step must be 10-50% of the "
            "fleet (SageMaker's limit)."
        )
    if rollout.strategy != "all_at_once" and serverless is not None:
        raise ConfigError(
            f"mlship:rolloutStrategy is {rollout.strategy!r} with a serverless endpoint: "
            "mlship sizes canary and linear steps in instances. Use all_at_once or set "
            "mlship:serverlessMemoryMb to 0."
        )
    if rollout.strategy != "all_at_once" and instance_count * rollout.percent < 100:
        raise ConfigError(
            f"mlship:rolloutPercent {rollout.percent}% of {instance_count} instance(s) is less "
            "than one instance: raise mlship:instanceCount or mlship:rolloutPercent."
        )
    waits = rollout.bake_seconds + rollout.termination_wait_seconds
    if rollout.timeout_seconds <= waits:
        raise ConfigError(
            f"mlship:rolloutTimeoutSeconds ({rollout.timeout_seconds}) must exceed the bake and "
            f"termination waits ({waits} s): raise it."
        )
    return rollout
