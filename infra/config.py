"""StackConfig: the one reader of ``pulumi.Config``; every ``mlship:`` key, validated once.

``KEYS`` is the single list of stack settings (name, Pulumi type, default, description). The
typed ``config:`` block of ``Pulumi.yaml`` declares the same keys (a test keeps the two equal) and
the README's reference table is written from it. Parsing is a pure function of raw strings
(:meth:`StackConfig.parse`), so bad values are tested without a Pulumi runtime; an invalid value
raises :class:`ConfigError` naming the key, the problem and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import ConfigError

Target = Literal["sagemaker", "eks"]
Strategy = Literal["all_at_once", "canary", "linear"]
KeyType = Literal["string", "integer", "boolean", "array"]

NAMESPACE = "mlship"


@dataclass(frozen=True)
class Key:
    """One ``mlship:`` stack setting as declared in ``Pulumi.yaml``."""

    name: str
    type: KeyType
    default: Any
    description: str


KEYS: tuple[Key, ...] = (
    Key("target", "string", "sagemaker", "Where the model is served: sagemaker or eks."),
    Key(
        "environment",
        "string",
        None,
        "Environment name in every resource name: 1-12 lowercase letters or digits (prod* is "
        "production).",
    ),
    Key("instanceType", "string", "ml.m5.large", "SageMaker instance type (ml.*)."),
    Key("instanceCount", "integer", 1, "SageMaker instances (initial count, >= 1)."),
    Key(
        "serverlessMemoryMb",
        "integer",
        0,
        "SageMaker Serverless memory (1024-6144, step 1024); 0 means instance-based.",
    ),
    Key("serverlessMaxConcurrency", "integer", 5, "SageMaker Serverless max concurrency (1-200)."),
    Key("autoscalingMinCapacity", "integer", 1, "Autoscaling minimum (instances or pods)."),
    Key("autoscalingMaxCapacity", "integer", 2, "Autoscaling maximum (instances or pods)."),
    Key(
        "autoscalingTargetInvocations",
        "integer",
        200,
        "SageMaker target-tracking value: invocations per instance per minute.",
    ),
    Key("autoscalingTargetCpu", "integer", 70, "EKS HPA target: average CPU utilisation (%)."),
    Key("imageRepository", "string", "mlship", "ECR repository name for the serving image."),
    Key("imageTag", "string", None, "Image tag to deploy (immutable tags: use the git SHA)."),
    Key(
        "modelDataKey",
        "string",
        "models/current/model.tar.gz",
        "S3 key of the bundle's model.tar.gz in the artifact bucket (under models/).",
    ),
    Key(
        "dataCapturePercent",
        "integer",
        0,
        "Percentage of requests captured to s3://<bucket>/capture/ (0 turns capture off).",
    ),
    Key("alarmLatencyP99Ms", "integer", 500, "Alarm when p99 model latency exceeds this (ms)."),
    Key("alarm5xxCount", "integer", 5, "Alarm when 5xx errors per minute exceed this."),
    Key("alarm4xxCount", "integer", 50, "Alarm when 4xx errors per minute exceed this."),
    Key("alarmCpuPercent", "integer", 80, "Alarm when average CPU utilisation exceeds this (%)."),
    Key("alarmMemoryPercent", "integer", 80, "Alarm when average memory utilisation exceeds this."),
    Key("alertEmails", "array", [], "E-mail addresses subscribed to the alarm topic."),
    Key(
        "rolloutStrategy",
        "string",
        "all_at_once",
        "Blue/green traffic shift: all_at_once, canary or linear.",
    ),
    Key(
        "rolloutPercent",
        "integer",
        50,
        "Canary size or linear step, % of capacity (canary 1-50, linear 10-50).",
    ),
    Key("rolloutBakeSeconds", "integer", 300, "Wait between traffic steps (0-3600 s)."),
    Key(
        "rolloutTimeoutSeconds",
        "integer",
        3600,
        "Whole-deployment timeout (600-28800 s), longer than the bake and termination waits.",
    ),
    Key(
        "rolloutTerminationWaitSeconds",
        "integer",
        0,
        "Keep the old fleet this long after the shift, for a fast rollback (0-3600 s).",
    ),
    Key("vpcCidr", "string", "10.0.0.0/16", "CIDR of the VPC created when no subnetIds are given."),
    Key(
        "subnetIds", "array", [], "Existing private subnet ids (>= 2) to use instead of a new VPC."
    ),
    Key("securityGroupIds", "array", [], "Existing security group ids for the model or nodes."),
    Key("tags", "array", [], "Extra tags as key=value strings, on every taggable resource."),
    Key("githubRepository", "string", None, "GitHub owner/name allowed to assume the deploy role."),
    Key(
        "githubEnvironments",
        "array",
        [],
        "GitHub environments allowed to deploy (default: the environment name).",
    ),
    Key(
        "githubOidcProviderArn",
        "string",
        "",
        "Existing GitHub OIDC provider ARN (one per account); empty creates it.",
    ),
    Key("mlflowServer", "boolean", False, "Create a SageMaker managed MLflow tracking server."),
    Key(
        "mlflowServerSize", "string", "Small", "MLflow tracking server size: Small, Medium, Large."
    ),
    Key("logLevel", "string", "INFO", "MLSHIP_LOG_LEVEL of the serving container."),
    Key("apiKeysSecret", "string", "", "Secrets Manager secret with API key hashes (EKS REST)."),
    Key("kubernetesVersion", "string", "1.33", "EKS Kubernetes version (1.30-1.34)."),
    Key("nodeInstanceType", "string", "t3.large", "EKS managed node group instance type."),
    Key("nodeMinSize", "integer", 2, "EKS node group minimum size."),
    Key("nodeMaxSize", "integer", 4, "EKS node group maximum size."),
    Key(
        "clusterPublicAccessCidrs",
        "array",
        [],
        "CIDRs allowed to reach the EKS API; empty makes the endpoint private-only.",
    ),
    Key("serviceInternal", "boolean", True, "EKS Service load balancer is internal (VPC only)."),
    Key("podCpu", "string", "500m", "EKS container CPU request and limit."),
    Key("podMemory", "string", "1Gi", "EKS container memory request and limit."),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}

_ENV_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_SAGEMAKER_INSTANCE_RE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(?:[0-9]*x?large|medium|small|micro)$")
_EC2_INSTANCE_RE = re.compile(r"^[a-z][a-z0-9-]*\.(?:[0-9]*x?large|medium|small|micro|nano)$")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ECR_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CIDR_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d$")
_K8S_QUANTITY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:m|Ki|Mi|Gi)?$")
_ACCOUNT_ARN_RE = re.compile(
    r"^arn:aws:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
)
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
_TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")
SUPPORTED_KUBERNETES = ("1.30", "1.31", "1.32", "1.33", "1.34")


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


@dataclass(frozen=True)
class Rollout:
    """Blue/green traffic shifting for endpoint updates, with auto-rollback on alarms."""

    strategy: Strategy
    percent: int
    bake_seconds: int
    timeout_seconds: int
    termination_wait_seconds: int


@dataclass(frozen=True)
class Alarms:
    """Alarm thresholds and who is told."""

    latency_p99_ms: int
    errors_5xx: int
    errors_4xx: int
    cpu_percent: int
    memory_percent: int
    emails: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    """Create a VPC from ``vpc_cidr``, or use the given subnets and security groups."""

    vpc_cidr: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @property
    def create_vpc(self) -> bool:
        """True when no subnets are given (only the EKS target creates a VPC)."""
        return not self.subnet_ids


@dataclass(frozen=True)
class Github:
    """Who may assume the deploy role: one repository, branch ``main`` and environments."""

    repository: str
    environments: tuple[str, ...]
    oidc_provider_arn: str


@dataclass(frozen=True)
class Eks:
    """EKS cluster and workload settings (used only when ``target`` is ``eks``)."""

    kubernetes_version: str
    node_instance_type: str
    node_min_size: int
    node_max_size: int
    public_access_cidrs: tuple[str, ...]
    service_internal: bool
    pod_cpu: str
    pod_memory: str


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
    log_level: str
    api_keys_secret: str
    eks: Eks

    @property
    def is_production(self) -> bool:
        """Production stacks must capture every request and roll out with a canary or linear."""
        return self.environment.startswith("prod")

    @classmethod
    def load(cls) -> StackConfig:
        """Read the ``mlship:`` keys (and ``aws:region``) of the running stack.

        Raises:
            ConfigError: a key is missing or invalid; the message names the key and the fix.
        """
        import pulumi

        cfg = pulumi.Config(NAMESPACE)
        raw: dict[str, str] = {}
        for key in KEYS:
            value = cfg.get(key.name)
            if value is not None:
                raw[key.name] = value
        region = pulumi.Config("aws").get("region")
        return cls.parse(
            raw,
            project=pulumi.get_project(),
            stack=pulumi.get_stack(),
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
        r = _Reader(raw)
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
        instance_type = r.string("instanceType")
        if not _SAGEMAKER_INSTANCE_RE.match(instance_type):
            raise ConfigError(
                f"mlship:instanceType is {instance_type!r}: SageMaker instance types start with "
                "'ml.', e.g. ml.m5.large."
            )
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
        capture = r.integer("dataCapturePercent", 0, 100)
        if capture and serverless is not None:
            raise ConfigError(
                f"mlship:dataCapturePercent is {capture} on a serverless endpoint: SageMaker "
                "Serverless Inference does not capture data. Set it to 0 or use instances."
            )
        alarms = Alarms(
            latency_p99_ms=r.integer("alarmLatencyP99Ms", 1, 60_000),
            errors_5xx=r.integer("alarm5xxCount", 0, 1_000_000),
            errors_4xx=r.integer("alarm4xxCount", 0, 1_000_000),
            cpu_percent=r.integer("alarmCpuPercent", 1, 10_000),
            memory_percent=r.integer("alarmMemoryPercent", 1, 100),
            emails=r.strings("alertEmails", _EMAIL_RE, "an e-mail address such as ops@example.com"),
        )
        rollout = _rollout(r, instance_count, serverless)
        network = Network(
            vpc_cidr=_cidr(r.string("vpcCidr"), "vpcCidr"),
            subnet_ids=r.strings("subnetIds", _SUBNET_RE, "a subnet id such as subnet-0abc1234"),
            security_group_ids=r.strings(
                "securityGroupIds", _SG_RE, "a security group id such as sg-0abc1234"
            ),
        )
        if network.subnet_ids and len(network.subnet_ids) < 2:
            raise ConfigError(
                "mlship:subnetIds lists one subnet: give at least two, in different "
                "availability zones, or none to create a VPC."
            )
        if network.subnet_ids and serverless is not None and target == "sagemaker":
            raise ConfigError(
                "mlship:subnetIds is set for a serverless endpoint: SageMaker Serverless "
                "Inference cannot run in a VPC. Remove the subnets or use instances."
            )
        if network.subnet_ids and not network.security_group_ids and target == "sagemaker":
            raise ConfigError(
                "mlship:securityGroupIds is empty while mlship:subnetIds is set: a SageMaker "
                "model in a VPC needs at least one security group id."
            )
        github = Github(
            repository=_github_repo(r),
            environments=r.strings(
                "githubEnvironments",
                re.compile(r"^[\w .-]{1,255}$"),
                "a GitHub environment name such as prod",
            )
            or (environment,),
            oidc_provider_arn=r.string("githubOidcProviderArn"),
        )
        if github.oidc_provider_arn and not _ACCOUNT_ARN_RE.match(github.oidc_provider_arn):
            raise ConfigError(
                f"mlship:githubOidcProviderArn is {github.oidc_provider_arn!r}: give the ARN "
                "arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com, or "
                "leave it empty to create the provider."
            )
        config = cls(
            project=project,
            stack=stack,
            region=region,
            target=target,
            environment=environment,
            instance_type=instance_type,
            instance_count=instance_count,
            serverless=serverless,
            autoscaling=autoscaling,
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
            log_level=r.choice("logLevel", ("DEBUG", "INFO", "WARNING", "ERROR")),
            api_keys_secret=r.string("apiKeysSecret"),
            eks=_eks(r),
        )
        _check_production(config)
        return config


def _rollout(r: _Reader, instance_count: int, serverless: Serverless | None) -> Rollout:
    rollout = Rollout(
        strategy=r.choice("rolloutStrategy", ("all_at_once", "canary", "linear")),
        percent=r.integer("rolloutPercent", 1, 50),
        bake_seconds=r.integer("rolloutBakeSeconds", 0, 3600),
        timeout_seconds=r.integer("rolloutTimeoutSeconds", 600, 28_800),
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


def _github_repo(r: _Reader) -> str:
    repo = r.required_str(
        "githubRepository", "`pulumi config set mlship:githubRepository owner/name`"
    )
    if not _GITHUB_REPO_RE.match(repo) or "*" in repo:
        raise ConfigError(
            f"mlship:githubRepository is {repo!r}: give exactly one repository as owner/name "
            "(no wildcards: it decides who can deploy)."
        )
    return repo


def _tags(r: _Reader) -> dict[str, str]:
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


def _eks(r: _Reader) -> Eks:
    version = r.choice("kubernetesVersion", SUPPORTED_KUBERNETES)
    node_type = r.string("nodeInstanceType")
    if not _EC2_INSTANCE_RE.match(node_type) or node_type.startswith("ml."):
        raise ConfigError(
            f"mlship:nodeInstanceType is {node_type!r}: give an EC2 instance type such as "
            "t3.large (not a SageMaker ml.* type)."
        )
    eks = Eks(
        kubernetes_version=version,
        node_instance_type=node_type,
        node_min_size=r.integer("nodeMinSize", 1, 100),
        node_max_size=r.integer("nodeMaxSize", 1, 100),
        public_access_cidrs=tuple(
            _cidr(c, "clusterPublicAccessCidrs")
            for c in r.strings(
                "clusterPublicAccessCidrs", _CIDR_RE, "a CIDR such as 203.0.113.0/24"
            )
        ),
        service_internal=r.boolean("serviceInternal"),
        pod_cpu=r.string("podCpu"),
        pod_memory=r.string("podMemory"),
    )
    if eks.node_max_size < eks.node_min_size:
        raise ConfigError(
            f"mlship:nodeMaxSize ({eks.node_max_size}) is below mlship:nodeMinSize "
            f"({eks.node_min_size}): raise the maximum."
        )
    if "0.0.0.0/0" in eks.public_access_cidrs:
        raise ConfigError(
            "mlship:clusterPublicAccessCidrs contains 0.0.0.0/0: list the CIDRs of your "
            "offices or CI runners, or leave it empty for a private-only API endpoint."
        )
    for key, value in (("podCpu", eks.pod_cpu), ("podMemory", eks.pod_memory)):
        if not _K8S_QUANTITY_RE.match(value):
            raise ConfigError(
                f"mlship:{key} is {value!r}: give a Kubernetes quantity such as 500m or 1Gi."
            )
    return eks


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


def _cidr(value: str, key: str) -> str:
    m = _CIDR_RE.match(value)
    if not m or any(int(p) > 255 for p in m.groups()[:4]) or int(m.group(5)) > 32:
        raise ConfigError(f"mlship:{key} value {value!r} is not a CIDR such as 10.0.0.0/16.")
    return value


class _Reader:
    """Typed access to raw config strings, with the declared defaults of ``KEYS``."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        unknown = sorted(set(raw) - set(KEYS_BY_NAME))
        if unknown:
            raise ConfigError(
                f"mlship:{unknown[0]} is not a setting mlship knows: remove it or fix the spelling "
                f"(settings: {', '.join(sorted(KEYS_BY_NAME))})."
            )
        self._raw = raw

    def _value(self, name: str) -> Any:
        key = KEYS_BY_NAME[name]
        value = self._raw.get(name)
        return key.default if value is None else value

    def optional_str(self, name: str) -> str | None:
        value = self._value(name)
        return None if value is None else str(value)

    def string(self, name: str) -> str:
        value = self._value(name)
        return "" if value is None else str(value)

    def required_str(self, name: str, fix: str) -> str:
        value = self.optional_str(name)
        if value is None or not value.strip():
            raise ConfigError(f"mlship:{name} is not set: {fix}.")
        return value.strip()

    def choice(self, name: str, allowed: Sequence[str]) -> Any:
        value = self.string(name)
        if value not in allowed:
            raise ConfigError(f"mlship:{name} is {value!r}: use one of {', '.join(allowed)}.")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._value(name)
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or str(number) != str(value).strip():
            raise ConfigError(f"mlship:{name} is {value!r}: give a whole number {low}-{high}.")
        if not low <= number <= high:
            raise ConfigError(f"mlship:{name} is {number}: it must be between {low} and {high}.")
        return number

    def boolean(self, name: str) -> bool:
        value = self._value(name)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ConfigError(f"mlship:{name} is {value!r}: give true or false.")

    def strings(self, name: str, pattern: re.Pattern[str], example: str) -> tuple[str, ...]:
        value = self._value(name)
        items = _as_list(value, name)
        for item in items:
            if not isinstance(item, str) or not pattern.match(item):
                raise ConfigError(f"mlship:{name} entry {item!r} is not {example}.")
        return tuple(items)


def _as_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, list):
        raise ConfigError(
            f"mlship:{name} is {value!r}: give a YAML list in the stack file, or "
            f"`pulumi config set --path 'mlship:{name}[0]' VALUE`."
        )
    return parsed
