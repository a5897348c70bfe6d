"""StackConfig: every ``mlship:`` setting of a stack, validated once, section by section.

Parsing is a pure function of raw strings (:meth:`StackConfig.parse`), so bad values are tested
without a Pulumi runtime. Each section (``sagemaker``, ``monitoring``, ``network``, ``github``,
``eks``) parses its own keys; this module reads the rest (target, environment, image, bundle,
capture, tags, MLflow, logging) and the rules that span sections (production fails closed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core.errors import ConfigError
from infra.config.batch import BatchSchedule, parse_batch
from infra.config.eks import Eks, parse_eks
from infra.config.github import Github, parse_github
from infra.config.keys import NAMESPACE, Reader, declared_keys
from infra.config.monitoring import Alarms, parse_alarms
from infra.config.network import Network, parse_network
from infra.config.rollout import RolloutSpec, parse_rollout_spec, sagemaker_rollout
from infra.config.sagemaker import (
    Autoscaling,
    Rollout,
    Serverless,
    parse_capacity,
    parse_rollout,
)
from infra.config.signals import Signals, parse_signals

Target = Literal["sagemaker", "eks"]

_ENV_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ECR_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d$")
_TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")


@dataclass(frozen=True)
class StackConfig:
    """Every stack setting, validated; built once in ``infra/__main__.py``."""

    project: str
    stack: str
    region: str
    target: Target
    environment: str
    instance_type: str
    instance_count: int
    serverless: Serverless | None
    autoscaling: Autoscaling
    image_repository: str
    image_tag: str
    model_data_key: str
    data_capture_percent: int
    alarms: Alarms
    rollout: Rollout
    network: Network
    tags: dict[str, str]
    github: Github
    mlflow_server: bool
    mlflow_server_size: str
    mlflow_tracking_server_arn: str | None
    spot_training: bool
    log_level: str
    api_keys_secret: str
    eks: Eks
    rollout_spec: RolloutSpec  # steps and the model change (infra/config/rollout.py)
    # Scheduled batch scoring (None: off) and the model-signal alarms and routes.
    batch: BatchSchedule | None = None
    signals: Signals | None = None

    @property
    def is_production(self) -> bool:
        """Production stacks must capture every request and roll out with a canary or linear."""
        return self.environment.startswith("prod")

    @classmethod
    def load(cls, *, project: str | None = None, stack: str | None = None) -> StackConfig:
        """Read the ``mlship:`` keys (and ``aws:region``) of the running stack, or of
        ``project``/``stack`` before the Pulumi runtime is configured (only the config map
        needs to be set).

        Raises:
            ConfigError: a key is missing or invalid; the message names the key and the fix.
        """
        import pulumi

        cfg = pulumi.Config(NAMESPACE)
        raw: dict[str, str] = {}
        for key in declared_keys():
            value = cfg.get(key.name)
            if value is not None:
                raw[key.name] = value
        region = pulumi.Config("aws").get("region")
        return cls.parse(
            raw,
            project=pulumi.get_project() if project is None else project,
            stack=pulumi.get_stack() if stack is None else stack,
            region=region,
        )

    @classmethod
    def parse(
        cls, raw: Mapping[str, str], *, project: str, stack: str, region: str | None
    ) -> StackConfig:
        """Validate raw config strings (as Pulumi stores them) into a StackConfig.

        Raises:
            ConfigError: naming the first invalid key, the problem and the fix.
        """
        r = Reader(raw)
        if region is None or not _REGION_RE.match(region):
            raise ConfigError(
                f"aws:region is {region!r}: set it to an AWS region, e.g. "
                "`pulumi config set aws:region eu-west-1`."
            )
        target = r.choice("target", ("sagemaker", "eks"))
        environment = r.required_str(
            "environment", "`pulumi config set mlship:environment dev` (prod* is production)"
        )
        if not _ENV_RE.match(environment):
            raise ConfigError(
                f"mlship:environment is {environment!r}: it must be 1-12 lowercase letters or "
                "digits starting with a letter (it is part of every resource name). Set "
                "`pulumi config set mlship:environment dev`."
            )
        capacity = parse_capacity(r, target=target)
        image_repository, image_tag, model_data_key = _artifacts(r)
        capture = r.integer("dataCapturePercent", 0, 100)
        if capture and capacity.serverless is not None:
            raise ConfigError(
                f"mlship:dataCapturePercent is {capture} on a serverless endpoint: SageMaker "
                "Serverless Inference does not capture data. Set it to 0 or use instances."
            )
        alarms = parse_alarms(r)
        rollout = parse_rollout(r, capacity.instance_count, capacity.serverless)
        rollout_spec = parse_rollout_spec(r, rollout, model_data_key, target)
        if target == "sagemaker" and capacity.serverless is None:
            rollout = sagemaker_rollout(rollout, rollout_spec.steps, capacity.instance_count)
        network = parse_network(r, target=target, serverless=capacity.serverless is not None)
        github = parse_github(r, environment=environment)
        config = cls(
            project=project,
            stack=stack,
            region=region,
            target=target,
            environment=environment,
            instance_type=capacity.instance_type,
            instance_count=capacity.instance_count,
            serverless=capacity.serverless,
            autoscaling=capacity.autoscaling,
            image_repository=image_repository,
            image_tag=image_tag,
            model_data_key=model_data_key,
            data_capture_percent=capture,
            alarms=alarms,
            rollout=rollout,
            network=network,
            tags=_tags(r),
            github=github,
            mlflow_server=r.boolean("mlflowServer"),
            mlflow_server_size=r.choice("mlflowServerSize", ("Small", "Medium", "Large")),
            mlflow_tracking_server_arn=_tracking_server_arn(r),
            spot_training=r.boolean("spotTraining"),
            log_level=r.choice("logLevel", ("DEBUG", "INFO", "WARNING", "ERROR")),
            api_keys_secret=r.string("apiKeysSecret"),
            eks=parse_eks(r, region, target),
            batch=parse_batch(r),
            signals=parse_signals(r, target=target, github_repository=github.repository),
            rollout_spec=rollout_spec,
        )
        _check_production(config)
        return config


def _artifacts(r: Reader) -> tuple[str, str, str]:
    """``imageRepository``, ``imageTag`` and ``modelDataKey``."""
    image_repository = r.string("imageRepository")
    if not _ECR_NAME_RE.match(image_repository) or len(image_repository) > 256:
        raise ConfigError(
            f"mlship:imageRepository is {image_repository!r}: ECR names are lowercase "
            "letters, digits and . _ - / separators, e.g. mlship."
        )
    image_tag = r.required_str("imageTag", "`pulumi config set mlship:imageTag <git-sha>`")
    if not _IMAGE_TAG_RE.match(image_tag) or image_tag == "latest":
        raise ConfigError(
            f"mlship:imageTag is {image_tag!r}: tags are immutable, so deploy a unique tag "
            "such as the git SHA (letters, digits, . _ -; not 'latest')."
        )
    model_data_key = r.string("modelDataKey")
    if not model_data_key.startswith("models/") or not model_data_key.endswith("model.tar.gz"):
        raise ConfigError(
            f"mlship:modelDataKey is {model_data_key!r}: it must be a key under models/ "
            "ending in model.tar.gz (the execution role may read only models/*), e.g. "
            "models/current/model.tar.gz."
        )
    return image_repository, image_tag, model_data_key


_TRACKING_SERVER_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[a-zA-Z0-9-]{1,256}$"
)


def _tracking_server_arn(r: Reader) -> str | None:
    """``mlflowTrackingServerArn``: another stack's server, never together with our own."""
    arn = r.string("mlflowTrackingServerArn")
    if not arn:
        return None
    if r.boolean("mlflowServer"):
        raise ConfigError(
            "mlship:mlflowServer is true and mlship:mlflowTrackingServerArn is set: a stack "
            "creates its registry or uses another stack's, not both. Unset one of them."
        )
    if not _TRACKING_SERVER_ARN_RE.match(arn):
        raise ConfigError(
            f"mlship:mlflowTrackingServerArn is {arn!r}: use the mlflowTrackingServerArn output "
            "of the stack that hosts the registry (arn:aws:sagemaker:<region>:<account>:"
            "mlflow-tracking-server/<name>)."
        )
    return arn


def _tags(r: Reader) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in r.strings("tags", re.compile(r"^[^=]+=.*$"), "key=value"):
        key, value = item.split("=", 1)
        if not _TAG_KEY_RE.match(key) or key.startswith("aws:") or len(value) > 256:
            raise ConfigError(
                f"mlship:tags entry {item!r}: keys are 1-128 letters, digits, spaces or "
                "_.:/=+-@ (not starting with aws:), values at most 256 characters."
            )
        tags[key] = value
    return tags


def _check_production(config: StackConfig) -> None:
    """Production fails closed: full data capture, a gradual rollout, >= 2 instances."""
    if not config.is_production:
        return
    if config.data_capture_percent != 100:
        raise ConfigError(
            f"mlship:dataCapturePercent is {config.data_capture_percent} in production: set it "
            "to 100 (every request is kept for drift analysis and audits)."
        )
    if not config.alarms.emails:
        raise ConfigError(
            "mlship:alertEmails is empty in production: list at least one address that is told "
            "when an alarm fires."
        )
    if config.target == "sagemaker":
        if config.serverless is not None or config.instance_count < 2:
            raise ConfigError(
                "mlship:instanceCount must be >= 2 in production (one instance is one failure "
                "away from an outage); serverless is for non-production stacks."
            )
        if config.rollout.strategy == "all_at_once":
            raise ConfigError(
                "mlship:rolloutStrategy is all_at_once in production: use canary or linear so a "
                "bad model meets the alarms before it meets all the traffic."
            )
