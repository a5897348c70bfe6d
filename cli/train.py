"""Handlers of the training and registry commands: train, promote, models, prepare,
expectations."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.errors import ConfigError
from core.registry import RegistrySettings


def _say(line: str) -> None:
    print(line, flush=True)


def train(args: argparse.Namespace) -> int:
    """``mlship train``: run the pipeline and print where the model went."""
    if args.sagemaker is not None:
        from pipelines.sagemaker.training import run_training_job

        if args.overrides or args.target is not None:
            raise ConfigError(
                "--set and --target do not apply with --sagemaker: a training job takes its "
                "overrides as hyper-parameters (mlship sagemaker-train --hyperparameter "
                "KEY=VALUE)."
            )
        registry = os.environ.get("MLFLOW_TRACKING_URI") is not None
        run_training_job(args.params, Path(args.sagemaker), registry, say=_say)
        return 0
    from pipelines.params import load_params, parse_overrides
    from pipelines.train import train as run_training

    overrides = parse_overrides(args.overrides)
    if args.target is not None:
        overrides["data.target"] = args.target
    params = load_params(args.params, overrides)
    print(f"training {params.model.type} ({params.task}) from {args.params}", flush=True)
    result = run_training(params, data=args.data, out=args.out, say=_say)
    print()
    print(f"bundle    {result.bundle_dir}")
    print(f"version   {result.bundle_version}")
    if result.registered_version is not None:
        print(
            f"registry  {params.registered_name} version {result.registered_version} "
            f"(alias {params.registry.alias}; run {result.run_id})"
        )
    else:
        print("registry  disabled (registry.enabled: false)")
    print("metrics   " + " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    print("gate      passed")
    return 0


def _registry_settings(params_path: Path) -> RegistrySettings:
    """Registry settings for ``mlship promote`` / ``models``: the model name of a params file.

    The name is params.yaml's ``registry.model_name``, by default its top-level ``name``; with
    no params file, ``mlship``.
    """
    if params_path.is_file():
        from pipelines.params import load_params

        params = load_params(params_path)
        return RegistrySettings.from_env(params.registered_name, params.registry.experiment)
    return RegistrySettings.from_env()


def promote(args: argparse.Namespace) -> int:
    """``mlship promote VERSION``: move ``--alias`` (default champion) to VERSION."""
    from pipelines.registry import promote as move_alias

    settings = _registry_settings(args.params)
    before = move_alias(settings, args.version, args.alias, force=args.force)
    was = f" (was version {before.version})" if before is not None else ""
    print(f"{settings.model_name}@{args.alias} -> version {args.version}{was}")
    return 0


def models(args: argparse.Namespace) -> int:
    """``mlship models``: every version with its aliases, task, data hash and metrics."""
    from pipelines.registry import versions

    settings = _registry_settings(args.params)
    rows = versions(settings)
    if not rows:
        print(f"No versions of {settings.model_name!r} in {settings.tracking_uri} yet.")
        print("Run `mlship train` to register one.")
        return 0
    print(f"{settings.model_name} in {settings.tracking_uri}")
    print(f"{'version':>7}  {'aliases':<20}  {'task':<14}  {'data':<12}  {'bundle':<26}  metrics")
    for row in rows:
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(row.metrics.items()))
        aliases = ",".join(row.aliases) or "-"
        data = (row.dataset_sha256 or "-")[:12]
        print(
            f"{row.version:>7}  {aliases:<20}  {row.task or '-':<14}  {data:<12}  "
            f"{row.bundle_version or '-':<26}  {metrics}"
        )
    return 0


def prepare(args: argparse.Namespace) -> int:
    """``mlship prepare``: write a bundled dataset as CSV."""
    from pipelines.data import BUILTIN_SOURCES, materialise

    out = args.out if args.out is not None else Path("data") / f"{args.dataset}.csv"
    path = materialise(args.dataset, out)
    print(f"wrote the {args.dataset} data (from {BUILTIN_SOURCES[args.dataset]}) to {path}")
    return 0


def expectations(args: argparse.Namespace) -> int:
    """``mlship expectations``: regenerate a suite from reference data and write it."""
    from pipelines.validate import expectations_from

    out = args.out
    if out is None:
        stem = Path(args.data).name.split(".")[0]
        out = Path("pipelines") / "expectations" / f"{stem}.json"
    suite = expectations_from(args.data, args.target, out, args.tolerance)
    print(f"wrote {len(suite['expectations'])} expectations from {args.data} to {out}")
    return 0
