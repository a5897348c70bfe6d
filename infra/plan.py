"""``mlship plan <stack>``: run the Pulumi program offline and check it against the policies.

The program runs under Pulumi's mock runtime (``pulumi.runtime.set_mocks``): no Pulumi CLI, no
provider plugins, no cloud calls. Stack configuration comes from ``Pulumi.<stack>.yaml`` and is
seeded with ``pulumi.runtime.set_all_config``, the same map the CLI hands a real run. Resource
inputs are exactly what ``pulumi up`` would send; values the cloud computes (ARNs, ids, URLs,
auto-named suffixes) are unknown offline, so AWS-shaped placeholders stand in for them.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from infra.api import validate_plan
from infra.config import StackConfig
from infra.mocks import MOCK_ACCOUNT, Recorded, RecordingMocks, RecordingMonitor
from infra.rules import RULES, Finding, evaluate

ROOT = Path(__file__).resolve().parent.parent
NOTICE = (
    "OFFLINE PLAN: the Pulumi program ran under Pulumi's mock runtime (no Pulumi CLI, no cloud "
    "calls). Resource inputs are what `pulumi up` would send; values the cloud computes (ARNs, "
    f"ids, URLs, name suffixes) are unknown here and shown as placeholders (account "
    f"{MOCK_ACCOUNT})."
)
# The properties worth a glance in the tree, per resource type (dotted paths into the inputs).
KEY_PROPS: dict[str, tuple[str, ...]] = {
    "aws:kms/key:Key": ("enableKeyRotation",),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:s3/bucketVersioning:BucketVersioning": ("versioningConfiguration.status",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "rules.0.applyServerSideEncryptionByDefault.sseAlgorithm",
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        "blockPublicAcls",
        "blockPublicPolicy",
    ),
    "aws:ecr/repository:Repository": (
        "name",
        "imageTagMutability",
        "imageScanningConfiguration.scanOnPush",
    ),
    "aws:iam/role:Role": ("name",),
    "aws:sagemaker/model:Model": ("primaryContainer.image", "enableNetworkIsolation"),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": (
        "productionVariants.0.instanceType",
        "productionVariants.0.initialInstanceCount",
        "productionVariants.0.serverlessConfig.memorySizeInMb",
        "dataCaptureConfig.initialSamplingPercentage",
    ),
    "aws:sagemaker/endpoint:Endpoint": (
        "name",
        "deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration.type",
    ),
    "aws:appautoscaling/target:Target": ("resourceId", "minCapacity", "maxCapacity"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "metricName",
        "threshold",
        "actionsEnabled",
    ),
    "aws:sns/topicSubscription:TopicSubscription": ("protocol", "endpoint"),
    "aws:eks/cluster:Cluster": ("name", "version", "vpcConfig.endpointPublicAccess"),
    "aws:eks/nodeGroup:NodeGroup": ("instanceTypes.0", "scalingConfig.minSize"),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "kubernetes:apps/v1:Deployment": ("metadata.name", "spec.replicas"),
    "kubernetes:argoproj.io/v1alpha1:Rollout": ("spec.strategy.canary.steps",),
    "kubernetes:helm.sh/v3:Release": ("chart", "version"),
    "aws:s3/bucketObject:BucketObject": ("key", "serverSideEncryption"),
    "kubernetes:core/v1:Service": ("metadata.name", "spec.type"),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": ("spec.minReplicas", "spec.maxReplicas"),
}


@dataclass
class StackPlan:
    """What an offline run of one stack produced."""

    project: str
    stack: str
    config: StackConfig
    resources: list[Recorded]
    outputs: dict[str, Any]
    findings: list[Finding]

    def of_type(self, type_: str) -> list[Recorded]:
        """The recorded resources of one type token, in registration order."""
        return [r for r in self.resources if r.type == type_]

    def counts(self) -> dict[str, int]:
        """Resource counts: AWS, Kubernetes, components, providers and the total."""
        aws = sum(r.type.startswith("aws:") for r in self.resources)
        k8s = sum(r.type.startswith("kubernetes:") for r in self.resources)
        components = sum(not r.custom for r in self.resources)
        providers = sum(r.type.startswith("pulumi:providers:") for r in self.resources)
        return {
            "total": len(self.resources),
            "aws": aws,
            "kubernetes": k8s,
            "components": components,
            "providers": providers,
        }


def project_name(root: Path = ROOT) -> str:
    """The project name from ``Pulumi.yaml``."""
    data = yaml.safe_load((root / "Pulumi.yaml").read_text())
    return str(data["name"])


def read_stack_config(stack: str, root: Path = ROOT) -> dict[str, str]:
    """``Pulumi.<stack>.yaml``'s ``config:`` as the strings Pulumi hands a program.

    Raises:
        ConfigError: the file is missing, not YAML, or holds a secret (needs the Pulumi CLI).
    """
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(
            f"no stack file {path.name}: create it, or plan one of: {', '.join(stacks)}."
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path.name} is not valid YAML: {e}") from e
    config = data.get("config") or {}
    raw: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and "secure" in value:
            raise ConfigError(
                f"{path.name}: {key} is a Pulumi secret, which only the Pulumi CLI can decrypt; "
                "the offline plan needs plain values."
            )
        if isinstance(value, str):
            raw[key] = value
        elif isinstance(value, bool):
            raw[key] = "true" if value else "false"
        else:
            raw[key] = json.dumps(value)
    return raw


def run_stack(
    stack: str, *, root: Path = ROOT, overrides: Mapping[str, str] | None = None
) -> StackPlan:
    """Run the Pulumi program for ``stack`` under mocks and evaluate the policy rules.

    Each run gets a fresh context, so several stacks can be planned in one process.

    Raises:
        ConfigError: the stack's configuration is invalid.
    """
    raw = read_stack_config(stack, root)
    raw.update(overrides or {})
    project = project_name(root)
    return contextvars.Context().run(_run, project, stack, raw)


def _run(project: str, stack: str, raw: dict[str, str]) -> StackPlan:
    import pulumi
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from infra import __main__ as program

    # Pulumi's runtime awaits on the thread's event loop; a caller that ran asyncio.run()
    # before (a test, an embedding app) leaves none set.
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    # Validate first: a bad value should read as a config error, not a stack trace. And
    # before set_mocks: it registers the root stack, and an error between the two left that
    # registration pending in Pulumi's process-wide output tracking, where the next plan
    # after an event-loop change (asyncio.run) waited for it forever.
    pulumi.runtime.set_all_config(raw)
    config = StackConfig.load(project=project, stack=stack)
    mocks = RecordingMocks(config.region)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    _sync_await(run_pulumi_func(program.main))
    root = get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {})
    outputs = {k: _sync_await(pulumi.Output.from_input(v).future()) for k, v in exported.items()}
    resources = monitor.recorded
    # The policy rules, then every AWS request checked against botocore's service models.
    findings = evaluate(resources) + validate_plan(resources, config.region)
    return StackPlan(project, stack, config, resources, outputs, findings)


def to_json(plan: StackPlan) -> dict[str, Any]:
    """The plan as data: notice, counts, resources with inputs, outputs, findings."""
    return {
        "offline": True,
        "notice": NOTICE,
        "project": plan.project,
        "stack": plan.stack,
        "target": plan.config.target,
        "region": plan.config.region,
        "counts": plan.counts(),
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "urn": r.urn,
                "parent": r.parent,
                "custom": r.custom,
                "protect": r.protect,
                "retainOnDelete": r.retain_on_delete,
                "inputs": r.inputs,
            }
            for r in plan.resources
        ],
        "outputs": plan.outputs,
        "rollout": rollout_lines(plan.config),
        "rules": [rule.__name__.removeprefix("rule_") for rule in RULES] + ["api_request"],
        "findings": [f.as_dict() for f in plan.findings],
    }


def render(plan: StackPlan) -> str:
    """The plan as a tree for people."""
    counts = plan.counts()
    lines = [
        NOTICE,
        "",
        f"Stack {plan.project}/{plan.stack}: target {plan.config.target}, region "
        f"{plan.config.region}, {counts['total']} resources ({counts['aws']} AWS, "
        f"{counts['kubernetes']} Kubernetes, {counts['components']} components, "
        f"{counts['providers']} providers)",
        f"pulumi:pulumi:Stack {plan.project}-{plan.stack}",
    ]
    urns = {r.urn for r in plan.resources}
    children: dict[str, list[Recorded]] = {}
    for r in plan.resources:
        children.setdefault(r.parent if r.parent in urns else "", []).append(r)

    def walk(parent: str, indent: str) -> None:
        kids = children.get(parent, [])
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            props = _key_props(r)
            lock = "  [protected]" if r.protect else ""
            lock += "  [retained on delete]" if r.retain_on_delete else ""
            lines.append(f"{indent}{'└─' if last else '├─'} {r.type} {r.name}{props}{lock}")
            walk(r.urn, indent + ("   " if last else "│  "))

    walk("", "")
    lines += ["", *rollout_lines(plan.config)]
    lines += ["", "Outputs (placeholders where the cloud computes the value):"]
    lines += [
        f"  {k}: {v if v not in (None, '') else '(unknown until deployed)'}"
        for k, v in sorted(plan.outputs.items())
    ]
    lines += [
        "",
        f"Policies: {len(RULES)} rules and the API requests checked against botocore's service "
        f"models, {len(plan.findings)} violation(s)",
    ]
    lines += [f"  VIOLATION {f.rule}: {f.resource}: {f.message}" for f in plan.findings]
    return "\n".join(lines) + "\n"


def rollout_lines(config: StackConfig) -> list[str]:
    """What the stack's rollout block compiles to (infra/rollout_spec.py)."""
    from infra.rollout_spec import describe

    return describe(config.target, config.rollout, config.rollout_spec)


def _key_props(r: Recorded) -> str:
    parts = []
    for path in KEY_PROPS.get(r.type, ()):
        value = _dig(r.inputs, path.split("."))
        if value is not None:
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # protobuf carries every number as a float
            text = json.dumps(value) if not isinstance(value, str) else value
            parts.append(f"{path.rsplit('.', 1)[-1]}={text[:70]}")
    return ("  " + " ".join(parts)) if parts else ""


def _dig(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value
