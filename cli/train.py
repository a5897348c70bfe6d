"""Handlers of the training and registry commands: train, promote, models, prepare,
expectations."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.errors import ConfigError
from core.registry import RegistrySettings


def _say(line: str) -> None:
    print(line, flush=True)


def train(args: argparse.Namespace) -> int:
    """``mlship train``: run the pipeline and print where the model went."""
    if args.sagemaker is not None:
        from pipelines.sagemaker.training import run_training_job
        from pipelines.train import Lineage

        if args.overrides or args.target is not None:
            raise ConfigError(
                "--set and --target do not apply with --sagemaker: a training job takes its "
                "overrides as hyper-parameters (mlship sagemaker-train --hyperparameter "
                "KEY=VALUE)."
            )
        registry = os.environ.get("MLFLOW_TRACKING_URI") is not None
        lineage = Lineage(
            data_version=os.environ.get("MLSHIP_DATA_VERSION") or None,
            git_commit=os.environ.get("MLSHIP_GIT_COMMIT") or None,
        )
        run_training_job(args.params, Path(args.sagemaker), registry, say=_say, lineage=lineage)
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
    """``mlship promote VERSION``: move ``--alias`` (default champion) to VERSION; with
    ``--stack``, tag the version with the stack, the time and ``--commit``."""
    from pipelines.release.candidate import promote_release

    if args.commit is not None and args.stack is None:
        raise ConfigError("--commit is recorded per stack: add --stack STACK.")
    settings = _registry_settings(args.params)
    before, tags = promote_release(
        settings,
        args.version,
        stack=args.stack,
        commit=args.commit,
        alias=args.alias,
        force=args.force,
    )
    was = f" (was version {before.version})" if before is not None else ""
    print(f"{settings.model_name}@{args.alias} -> version {args.version}{was}")
    for key, value in sorted(tags.items()):
        print(f"tag       {key}={value}")
    return 0


def register(args: argparse.Namespace) -> int:
    """``mlship register``: print ``version=`` and ``bundle=`` lines (for $GITHUB_OUTPUT)."""
    from pipelines.release.candidate import admit

    has_registry = bool(os.environ.get("MLFLOW_TRACKING_URI", "").strip())
    admitted = admit(
        args.bundle,
        args.out,
        settings=_registry_settings(args.params) if has_registry else None,
        served_model_uri=args.served_model,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"version={admitted.version or ''}")
    settings = _registry_settings(args.params)
    uri = f"models:/{settings.model_name}/{admitted.version}" if admitted.version else ""
    print(f"uri={uri}")
    print(f"bundle={admitted.candidate.archive}")
    print(f"data-version={admitted.candidate.manifest.data_version or ''}")
    return 0


def fetch(args: argparse.Namespace) -> int:
    """``mlship fetch URI``: download a registered bundle; prints its ``model.tar.gz``."""
    from core.bundle import ARCHIVE_NAME
    from core.registry import fetch_bundle

    path = fetch_bundle(args.uri, args.out)
    archive = path / ARCHIVE_NAME
    if not archive.is_file():
        raise ConfigError(
            f"{args.uri} has no {ARCHIVE_NAME} in its bundle; register it with `mlship register`, "
            "which keeps the trained archive."
        )
    print(f"bundle={archive}")
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
    suite = expectations_from(args.data, args.target, out, args.tolerance, args.exclude)
    print(f"wrote {len(suite['expectations'])} expectations from {args.data} to {out}")
    return 0
