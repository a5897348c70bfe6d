"""What a SageMaker rollout checks against the live endpoint, around ``pulumi up``.

Two gaps of the Terraform AWS provider under pulumi-aws, closed from the outside:

- **A rolled-back update reads as a success** (hashicorp/terraform-provider-aws #48997 and
  #46663): when SageMaker rolls an update back (an alarm fired, the new fleet failed), the
  endpoint returns to InService on the previous configuration and the provider reports success.
  :func:`verify_endpoint_config` compares the live ``EndpointConfigName`` with the configuration
  the update asked for (the stack output ``endpointConfigName``) and fails when they differ, so
  the rollout fails and puts the stack back on the previous release. Models and endpoint
  configurations are retained on delete (``components/sagemaker.py``), so the configuration
  SageMaker rolled back to still exists; :func:`prune_retired` removes old ones after a good
  rollout.
- **An update resets autoscaled capacity**: the provider does not send
  ``RetainAllVariantProperties``, so the new fleet starts at the configuration's
  ``InitialInstanceCount``. :func:`release_instance_count` is the live desired count, within the
  stack's autoscaling bounds, for the rollout to set as ``mlship:instanceCount`` first.

``python -m infra.rollout {capacity,verify,prune}`` is how ``.github/actions/rollout`` calls
these; each prints one line and exits 1 with an ``error:`` line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from core.errors import MlshipError
from infra.config import StackConfig
from infra.naming import VARIANT_NAME

# Statuses an endpoint passes through on its way back to InService (or to Failed).
TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


class RolloutError(MlshipError):
    """The live endpoint is not what the rollout asked for."""


def _describe(client: Any, endpoint_name: str) -> dict[str, Any] | None:
    try:
        response: dict[str, Any] = client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as e:
        message = str(e.response.get("Error", {}).get("Message", ""))
        if e.response.get("Error", {}).get("Code") == "ValidationException" and (
            "Could not find endpoint" in message
        ):
            return None
        raise
    return response


def live_instance_count(client: Any, endpoint_name: str, variant_name: str) -> int | None:
    """The variant's desired instance count now (what autoscaling last chose), or None when the
    endpoint does not exist yet (a first deployment)."""
    endpoint = _describe(client, endpoint_name)
    if endpoint is None:
        return None
    for variant in endpoint.get("ProductionVariants") or []:
        if variant.get("VariantName") == variant_name:
            count = variant.get("DesiredInstanceCount", variant.get("CurrentInstanceCount"))
            return int(count) if count is not None else None
    return None


def release_instance_count(live: int | None, config: StackConfig) -> int:
    """The initial instance count of the next release: the live count within the autoscaling
    bounds, or the configured count for a first deployment or a serverless endpoint."""
    if live is None or config.serverless is not None:
        return config.instance_count
    return max(config.autoscaling.min_capacity, min(live, config.autoscaling.max_capacity))


def verify_endpoint_config(
    client: Any,
    endpoint_name: str,
    expected_config: str,
    *,
    timeout_seconds: float = 1800,
    poll_seconds: float = 15,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until the endpoint settles, then require it InService on ``expected_config``.

    Raises:
        RolloutError: the endpoint is missing, failed, still changing after ``timeout_seconds``,
            or serves another configuration (SageMaker rolled the update back).
    """
    deadline = clock() + timeout_seconds
    while True:
        endpoint = _describe(client, endpoint_name)
        if endpoint is None:
            raise RolloutError(
                f"endpoint {endpoint_name} does not exist after pulumi up: check the stack's "
                "endpointName output and the region of the credentials."
            )
        status = str(endpoint.get("EndpointStatus"))
        if status not in TRANSITIONAL or clock() >= deadline:
            break
        sleep(poll_seconds)
    live = endpoint.get("EndpointConfigName")
    reason = endpoint.get("FailureReason") or "no failure reason given"
    if status != "InService":
        raise RolloutError(
            f"endpoint {endpoint_name} is {status} after pulumi up ({reason}): the release did "
            "not take; the rollout puts the stack back on the previous release."
        )
    if live != expected_config:
        raise RolloutError(
            f"endpoint {endpoint_name} serves {live}, not {expected_config}: SageMaker rolled "
            f"the update back ({reason}) while pulumi reported success (terraform-provider-aws "
            "#48997). The rollout puts the stack back on the previous release; look at the "
            "rollback alarms and the endpoint's CloudWatch logs for why."
        )


def _family(name: str) -> str:
    """The auto-name family of ``name``: Pulumi names ``<logical name>-<random suffix>``."""
    return name.rsplit("-", 1)[0] + "-"


def prune_retired(
    client: Any, endpoint_name: str, current_config: str, *, keep: int = 3
) -> list[str]:
    """Delete retired endpoint configurations and models of this endpoint's family: all but the
    live one, ``current_config`` and the ``keep`` newest, and the models no kept configuration
    uses. Returns the deleted names.
    """
    endpoint = _describe(client, endpoint_name)
    live = endpoint.get("EndpointConfigName") if endpoint is not None else None
    family = _family(current_config)
    configs = sorted(
        (
            c
            for c in _pages(client, "list_endpoint_configs", "EndpointConfigs", family)
            if str(c["EndpointConfigName"]).startswith(family)
        ),
        key=lambda c: (c["CreationTime"], c["EndpointConfigName"]),
        reverse=True,
    )
    kept = {c["EndpointConfigName"] for c in configs[:keep]} | {current_config}
    if live is not None:
        kept.add(live)
    models_kept: set[str] = set()
    model_families: set[str] = set()
    for name in kept:
        described = client.describe_endpoint_config(EndpointConfigName=name)
        for variant in described.get("ProductionVariants") or []:
            models_kept.add(variant["ModelName"])
            model_families.add(_family(variant["ModelName"]))
    deleted = []
    for c in configs:
        if c["EndpointConfigName"] not in kept:
            client.delete_endpoint_config(EndpointConfigName=c["EndpointConfigName"])
            deleted.append(c["EndpointConfigName"])
    for model_family in sorted(model_families):
        for m in _pages(client, "list_models", "Models", model_family):
            name = m["ModelName"]
            if name.startswith(model_family) and name not in models_kept:
                client.delete_model(ModelName=name)
                deleted.append(name)
    return deleted


def _pages(client: Any, method: str, key: str, contains: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"NameContains": contains, "MaxResults": 100}
    while True:
        page = getattr(client, method)(**kwargs)
        items += page.get(key) or []
        if not page.get("NextToken"):
            return items
        kwargs["NextToken"] = page["NextToken"]


def config_from_pulumi_json(data: Mapping[str, Any], *, project: str, stack: str) -> StackConfig:
    """A StackConfig from ``pulumi config --json`` output (the stack's values; the project's
    declared defaults fill the rest).

    Raises:
        ConfigError: a value is invalid (as for ``pulumi up``).
    """
    raw: dict[str, str] = {}
    for full_name, entry in data.items():
        if not full_name.startswith("mlship:"):
            continue
        value = entry.get("objectValue", entry.get("value"))
        raw[full_name.split(":", 1)[1]] = value if isinstance(value, str) else json.dumps(value)
    region = data.get("aws:region", {}).get("value")
    return StackConfig.parse(raw, project=project, stack=stack, region=region)


def _client() -> Any:
    import boto3

    return boto3.client("sagemaker")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m infra.rollout`` command line."""
    parser = argparse.ArgumentParser(prog="python -m infra.rollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    capacity = sub.add_parser("capacity", help="print the instance count for the next release")
    capacity.add_argument("--config-json", type=Path, required=True)
    capacity.add_argument("--project", default="mlship")
    capacity.add_argument("--stack", required=True)
    capacity.add_argument("--endpoint", required=True)
    verify = sub.add_parser("verify", help="fail unless the endpoint serves --expected-config")
    verify.add_argument("--endpoint", required=True)
    verify.add_argument("--expected-config", required=True)
    verify.add_argument("--timeout", type=float, default=1800)
    prune = sub.add_parser("prune", help="delete retired endpoint configurations and models")
    prune.add_argument("--endpoint", required=True)
    prune.add_argument("--current-config", required=True)
    prune.add_argument("--keep", type=int, default=3)
    return parser


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    """``capacity``, ``verify`` or ``prune``; 0 on success, 1 with an ``error:`` line."""
    args = build_parser().parse_args(argv)
    sm = client if client is not None else _client()
    try:
        if args.command == "capacity":
            config = config_from_pulumi_json(
                json.loads(args.config_json.read_text()), project=args.project, stack=args.stack
            )
            live = live_instance_count(sm, args.endpoint, VARIANT_NAME)
            print(release_instance_count(live, config))
        elif args.command == "verify":
            verify_endpoint_config(
                sm, args.endpoint, args.expected_config, timeout_seconds=args.timeout
            )
            print(f"endpoint {args.endpoint} serves {args.expected_config}")
        else:
            deleted = prune_retired(sm, args.endpoint, args.current_config, keep=args.keep)
            print(f"deleted {len(deleted)}" + (f": {' '.join(deleted)}" if deleted else ""))
    except MlshipError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"error: {args.command}: {e} (check the deploy role's permissions)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
