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

        registry = os.environ.get("MLFLOW_TRACKING_URI") is not None
        lineage = Lineage(
            data_version=os.environ.get("MLSHIP_DATA_VERSION") or None,
            git_commit=os.environ.get("MLSHIP_GIT_COMMIT") or None,
        )
        run_training_job(args.params, Path(args.sagemaker), registry, say=_say, lineage=lineage)
        return 0
    from pipelines.params import load_params
    from pipelines.train import train as run_training

    params = load_params(args.params)
    print(f"training {params.model.type} ({params.task}) from {args.params}", flush=True)
    result = run_training(params, data=args.data, out=args.out, say=_say)
    print()
    print(f"bundle    {result.bundle_dir}")
    print(f"version   {result.bundle_version}")
    if result.registered_version is not None:
        print(
            f"registry  {params.registry.model_name} version {result.registered_version} "
            f"(alias {params.registry.alias}; run {result.run_id})"
        )
    else:
        print("registry  disabled (registry.enabled: false)")
    print("metrics   " + " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    print("gate      passed")
    return 0


def _registry_settings() -> RegistrySettings:
    """Registry settings for ``mlship promote`` / ``models``: model name from ./params.yaml."""
    params_path = Path("params.yaml")
    if params_path.is_file():
        from pipelines.params import load_params

        registry = load_params(params_path).registry
        return RegistrySettings.from_env(registry.model_name, registry.experiment)
    return RegistrySettings.from_env()


def promote(args: argparse.Namespace) -> int:
    """``mlship promote VERSION``: move ``--alias`` (default champion) to VERSION; with
    ``--stack``, tag the version with the stack, the time and ``--commit``."""
    from pipelines.release.candidate import promote_release

    if args.commit is not None and args.stack is None:
        raise ConfigError("--commit is recorded per stack: add --stack STACK.")
    settings = _registry_settings()
    tags = promote_release(
        settings, args.version, stack=args.stack, commit=args.commit, alias=args.alias
    )
    print(f"{settings.model_name}@{args.alias} -> version {args.version}")
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
        settings=_registry_settings() if has_registry else None,
        served_model_uri=args.served_model,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"version={admitted.version or ''}")
    settings = _registry_settings()
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
    """``mlship models``: print every version with its aliases and metrics."""
    from core.registry import list_versions

    settings = _registry_settings()
    rows = list_versions(settings)
    if not rows:
        print(f"No versions of {settings.model_name!r} in {settings.tracking_uri} yet.")
        print("Run `mlship train` to register one.")
        return 0
    print(f"{settings.model_name} in {settings.tracking_uri}")
    print(f"{'version':>7}  {'aliases':<20}  {'bundle':<26}  metrics")
    for row in rows:
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(row.metrics.items()))
        aliases = ",".join(row.aliases) or "-"
        print(f"{row.version:>7}  {aliases:<20}  {row.bundle_version or '-':<26}  {metrics}")
    return 0


def prepare(args: argparse.Namespace) -> int:
    """``mlship prepare``: write a bundled dataset as CSV."""
    from pipelines.data import materialise

    path = materialise(args.dataset, args.out)
    print(f"wrote scikit-learn's {args.dataset} data to {path}")
    return 0


def expectations(args: argparse.Namespace) -> int:
    """``mlship expectations``: regenerate a suite from reference data and write it."""
    from pipelines.validate import expectations_from

    suite = expectations_from(args.data, args.target, args.out, args.tolerance)
    print(f"wrote {len(suite['expectations'])} expectations from {args.data} to {args.out}")
    return 0
