"""One rollout spec, compiled for each target and each kind of change.

The stack's ``rollout`` block (``infra/config/rollout.py``) compiles to:

- an **image change on SageMaker**: the endpoint's blue/green ``deployment_config`` (one step is
  SageMaker's CANARY, equal steps its LINEAR), with auto-rollback on the rollback alarms
  (``components/sagemaker.py``);
- an **image change on EKS**: an Argo Rollouts canary (``setWeight``/``pause`` steps) with a
  background analysis on the same CloudWatch metrics and thresholds as the stack's alarms
  (:func:`analysis_template`), which aborts and rolls back when one is breached;
- a **model change** (``rolloutChallengerDataKey``), on either target: the in-app policy, the
  flags document of ``core/flags.py`` (first step as the challenger's sticky share, the shadow
  share, the promotion thresholds) that the stack publishes to S3 for the service to follow.

SageMaker shifts traffic by instances (a canary is at least one instance and at most half of
the fleet), so an image canary needs two or more instances; the in-app split of a model change
is per request and works at any instance count, one included.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.flags import CHALLENGER_FLAG, FeatureFlags, Flag, RoutingKey, Shadow, Thresholds
from infra.config import Rollout
from infra.config.rollout import RolloutSpec, sagemaker_rollout

FLAGS_KEY = "models/rollout/flags.json"  # under models/: the serving roles may read it already
ARGO_API = "argoproj.io/v1alpha1"
__all__ = ["sagemaker_rollout"]  # compiled in the config (infra/config/rollout.py)


def flags_document(spec: RolloutSpec) -> FeatureFlags:
    """The in-app policy of a model change (validated by the service's own model)."""
    return FeatureFlags(
        routing_key=RoutingKey(header=spec.routing_header),
        flags={CHALLENGER_FLAG: Flag(percent=spec.steps[0] if spec.steps else 0)},
        shadow=Shadow(percent=spec.shadow_percent),
        thresholds=Thresholds(
            min_agreement=spec.min_agreement_percent / 100 or None,
            max_latency_delta_ms=spec.max_latency_delta_ms or None,
            max_error_rate=spec.max_challenger_error_percent / 100,
        ),
    )


def flags_json(spec: RolloutSpec) -> str:
    """The published document: stable JSON (sorted keys, lists sorted) for a stable diff."""
    data = flags_document(spec).model_dump(mode="json")
    return json.dumps(data, sort_keys=True, indent=2, default=sorted) + "\n"


def argo_canary_steps(steps: Sequence[int], bake_seconds: int) -> list[dict[str, Any]]:
    """``spec.strategy.canary.steps``: each weight, then a bake (the analysis runs meanwhile)."""
    out: list[dict[str, Any]] = []
    for weight in steps:
        out.append({"setWeight": weight})
        if bake_seconds:
            out.append({"pause": {"duration": f"{bake_seconds}s"}})
    return out


def analysis_template(
    name: str, namespace: str, alarms: Sequence[Any], period_seconds: int = 60
) -> dict[str, Any]:
    """An AnalysisTemplate with one CloudWatch metric per alarm, failing where the alarm would.

    ``alarms`` are :class:`infra.components.monitoring.AlarmSpec` (their metric, dimensions,
    statistic, comparison, threshold and datapoints), so the canary and the alarms cannot
    disagree about what "bad" is.
    """
    metrics = []
    for a in alarms:
        stat = a.statistic or a.extended_statistic
        op = "<=" if a.comparison.startswith("Greater") else ">="
        metrics.append(
            {
                "name": a.role,
                "interval": f"{period_seconds}s",
                # Missing data: an empty Values list passes, as the alarms' notBreaching does.
                "successCondition": f"all(result[0].Values, {{# {op} {a.threshold:g}}})",
                "failureLimit": max(0, a.datapoints_to_alarm - 1),
                "provider": {
                    "cloudWatch": {
                        "interval": f"{period_seconds * a.evaluation_periods}s",
                        "metricDataQueries": [
                            {
                                "id": a.role.replace("-", "_"),
                                "metricStat": {
                                    "metric": {
                                        "namespace": a.namespace,
                                        "metricName": a.metric_name,
                                        "dimensions": [
                                            {"name": k, "value": v}
                                            for k, v in sorted(a.dimensions.items())
                                        ],
                                    },
                                    "period": period_seconds,
                                    "stat": stat,
                                },
                                "returnData": True,
                            }
                        ],
                    }
                },
            }
        )
    return {
        "apiVersion": ARGO_API,
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"metrics": metrics},
    }


def argo_rollout(
    name: str,
    namespace: str,
    deployment: str,
    labels: dict[str, str],
    steps: Sequence[int],
    bake_seconds: int,
    template: str,
) -> dict[str, Any]:
    """A Rollout that takes over the Deployment's pods (``workloadRef``), canary by ``steps``.

    The Deployment stays the one pod template (its manifests, validation and rules unchanged);
    Argo scales it down progressively as the Rollout's pods become ready.
    """
    return {
        "apiVersion": ARGO_API,
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "workloadRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment,
                "scaleDown": "progressively",
            },
            "strategy": {
                "canary": {
                    "steps": argo_canary_steps(steps, bake_seconds),
                    "analysis": {"templates": [{"templateName": template}], "startingStep": 0},
                }
            },
        },
    }


def describe(target: str, rollout: Rollout, spec: RolloutSpec) -> list[str]:
    """What the spec compiles to, as the lines ``mlship plan`` prints."""
    steps = ", ".join(f"{s}%" for s in spec.steps) or "none (all at once)"
    lines = [f"Rollout: steps {steps}, bake {rollout.bake_seconds} s"]
    if target == "sagemaker":
        compiled = sagemaker_rollout(rollout, spec.steps)
        shift = compiled.strategy.upper()
        if compiled.strategy != "all_at_once":
            shift += f" {compiled.percent}% of capacity"
        lines.append(
            f"  image change: SageMaker blue/green {shift}, wait {compiled.bake_seconds} s, "
            "auto-rollback on the rollback alarms"
        )
    elif spec.steps:
        weights = " -> ".join(f"setWeight {s}" for s in spec.steps)
        lines.append(
            f"  image change: Argo Rollouts canary ({weights}), analysis on the stack's "
            "CloudWatch alarm metrics, abort and roll back on a breach"
        )
    else:
        lines.append("  image change: the Deployment's rolling update (no rollout steps)")
    if spec.model_change:
        doc = flags_document(spec)
        t = doc.thresholds
        lines.append(
            f"  model change: challenger s3://<bucket>/{spec.challenger_data_key} beside the "
            f"champion; flags s3://<bucket>/{FLAGS_KEY}: {doc.flags[CHALLENGER_FLAG].percent:g}% "
            f"of {spec.routing_header} keys, shadow {doc.shadow.percent:g}%; promotion needs "
            f"agreement >= {t.min_agreement}, latency delta <= {t.max_latency_delta_ms} ms, "
            f"challenger errors <= {t.max_error_rate}"
        )
    else:
        lines.append("  model change: none in progress (rolloutChallengerDataKey is empty)")
    return lines
