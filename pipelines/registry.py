"""The model registry's write side: log runs, register bundles, move aliases.

Reading (settings, fetching a registered bundle, listing versions) is
:mod:`core.registry`, shared with serving and batch scoring. A registered version's source is
the run's ``bundle`` artifact directory, the same files as the bundle on disk. MLflow is
imported only inside these functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.registry import (
    BUNDLE_ARTIFACT,
    RegistryError,
    RegistrySettings,
    is_not_found,
    mlflow_client,
    sorted_versions,
    sqlite_path,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from pipelines.evaluate import Champion


def _experiment_id(client: MlflowClient, settings: RegistrySettings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    db = sqlite_path(settings.tracking_uri)
    location = (db.parent / "artifacts").resolve().as_uri() if db is not None else None
    return str(client.create_experiment(settings.experiment, artifact_location=location))


TASK_TAG = "mlship.task"
DATASET_TAG = "mlship.dataset_sha256"
VERSION_TAGS = (TASK_TAG, DATASET_TAG)


def _describe(client: MlflowClient, mv: Any) -> Champion:
    """A registered version with its run's metrics, its task and its data hash.

    The task is the version's ``mlship.task`` tag; a version registered before that tag
    existed falls back to the task of its run's ``model.type`` parameter.
    """
    from pipelines.evaluate import Champion
    from pipelines.params import MODELS

    run = client.get_run(mv.run_id) if mv.run_id else None
    metrics = dict(run.data.metrics) if run is not None else {}
    task = mv.tags.get(TASK_TAG)
    if task is None and run is not None:
        model_type = run.data.params.get("model.type")
        task = MODELS[model_type][0] if model_type in MODELS else None
    return Champion(
        version=str(mv.version),
        metrics=metrics,
        task=task,
        dataset_sha256=mv.tags.get(DATASET_TAG),
    )


def aliased(settings: RegistrySettings, alias: str = "champion") -> Champion | None:
    """The version behind ``alias`` (default champion) with its metrics, task and data hash.

    Returns:
        None when the model or the alias does not exist.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    try:
        mv = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as e:
        if is_not_found(e):
            return None
        raise RegistryError(f"Cannot read alias {alias!r} from {settings.tracking_uri}: {e}") from e
    return _describe(client, mv)


@dataclass(frozen=True)
class VersionRecord:
    """One row of ``mlship models``: a version, its aliases, task, metrics and data hash."""

    version: str
    aliases: list[str]
    task: str | None
    metrics: dict[str, float]
    dataset_sha256: str | None
    bundle_version: str | None


def versions(settings: RegistrySettings) -> list[VersionRecord]:
    """Every registered version of the model, oldest first (empty when there is none)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    try:
        by_alias = dict(client.get_registered_model(settings.model_name).aliases)
    except MlflowException as e:
        if is_not_found(e):
            return []
        raise RegistryError(
            f"Cannot read model {settings.model_name!r} from {settings.tracking_uri}: {e}"
        ) from e
    rows = []
    for mv in sorted_versions(client, settings.model_name):
        described = _describe(client, mv)
        rows.append(
            VersionRecord(
                version=described.version,
                aliases=sorted(a for a, v in by_alias.items() if str(v) == described.version),
                task=described.task,
                metrics=described.metrics,
                dataset_sha256=described.dataset_sha256,
                bundle_version=mv.tags.get("mlship.bundle_version"),
            )
        )
    return rows


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)
    return out


def log_run(
    settings: RegistrySettings,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    bundle_dir: Path | None,
    failed: bool = False,
) -> str:
    """Record one training run (params, metrics, tags and the bundle files); returns its id.

    A run that failed the gate is recorded with status FAILED and no bundle.
    """
    from mlflow.entities import Metric, Param

    client = mlflow_client(settings)
    run = client.create_run(_experiment_id(client, settings), tags=tags)
    run_id = str(run.info.run_id)
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v[:6000]) for k, v in _flatten("", params, {}).items()],
        )
        if bundle_dir is not None:
            client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    return run_id


def log_failed_run(
    settings: RegistrySettings,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
) -> None:
    """Record a run that failed the gate (status FAILED, no bundle), best effort.

    The gate failure is the error the user must see, so a registry problem here is only a note.
    """
    from mlflow.exceptions import MlflowException

    try:
        log_run(settings, params, metrics, tags, None, failed=True)
    except (MlflowException, OSError) as e:
        print(f"note: could not record the failed run in MLflow ({e})", flush=True)


def register(settings: RegistrySettings, run_id: str, alias: str, tags: dict[str, str]) -> str:
    """Register the run's bundle as a new version and point ``alias`` at it.

    The version is tagged with ``tags`` and with the run's ``mlship.task`` and
    ``mlship.dataset_sha256`` tags.

    All or nothing: if any step fails, the version (and a registered model created just now)
    is deleted and the run marked FAILED, so no half-registered entry is left.

    Returns:
        The new version number.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    created_model = False
    version: str | None = None
    try:
        try:
            client.get_registered_model(settings.model_name)
        except MlflowException as e:
            if not is_not_found(e):
                raise
            client.create_registered_model(settings.model_name)
            created_model = True
        run = client.get_run(run_id)
        # the task and the data hash go on the version too: the gate and `mlship promote`
        # compare versions by them
        copied = {k: run.data.tags[k] for k in VERSION_TAGS if k in run.data.tags}
        mv = client.create_model_version(
            settings.model_name,
            source=f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}",
            run_id=run_id,
            tags={**copied, **tags},
        )
        version = str(mv.version)
        client.set_registered_model_alias(settings.model_name, alias, version)
    except BaseException as e:
        _undo_registration(client, settings.model_name, version, created_model, run_id)
        if not isinstance(e, MlflowException | OSError):
            raise  # e.g. KeyboardInterrupt: cleaned up, re-raised as it is
        raise RegistryError(
            f"Registering the model in {settings.tracking_uri} failed ({e}); nothing was "
            "registered. Check that the tracking server is reachable and writable, then run "
            "`mlship train` again."
        ) from e
    return version


def _undo_registration(
    client: MlflowClient, name: str, version: str | None, created_model: bool, run_id: str
) -> None:
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            client.delete_model_version(name, version)
        if created_model:
            client.delete_registered_model(name)
        client.set_terminated(run_id, "FAILED")
    except MlflowException:
        pass  # the original error is the one to report; the store refused the clean-up too


def delete_version(settings: RegistrySettings, version: str, run_id: str) -> None:
    """Remove a version registered by a run that then failed (and mark the run FAILED)."""
    _undo_registration(mlflow_client(settings), settings.model_name, version, False, run_id)


def promote(
    settings: RegistrySettings, version: str, alias: str = "champion", force: bool = False
) -> Champion | None:
    """Point ``alias`` at an existing version.

    Args:
        settings: The registry and the model name.
        version: The version to promote.
        alias: The alias to move (default champion).
        force: Move it even when the version's task differs from the current holder's.

    Returns:
        The version the alias pointed at before, or None.

    Raises:
        RegistryError: the version does not exist, or its task differs from the task of the
            version behind ``alias`` (a regressor never silently replaces a classifier: every
            client of ``models:/NAME@ALIAS`` would get another kind of answer).
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    try:
        mv = client.get_model_version(settings.model_name, version)
    except MlflowException as e:
        known = ", ".join(str(v.version) for v in sorted_versions(client, settings.model_name))
        raise RegistryError(
            f"Model {settings.model_name!r} has no version {version!r} in "
            f"{settings.tracking_uri} (versions: {known or 'none'}). Run `mlship models` to "
            "list them, or `mlship train` to register one."
        ) from e
    current = aliased(settings, alias)
    candidate = _describe(client, mv)
    if (
        not force
        and current is not None
        and current.version != candidate.version
        and current.task != candidate.task
    ):
        name = settings.model_name
        raise RegistryError(
            f"Version {version} of {name!r} is a {candidate.task or 'unknown-task'} model, but "
            f"{name}@{alias} (version {current.version}) is a {current.task or 'unknown-task'} "
            f"model: promoting it would change the kind of answer every client of "
            f"models:/{name}@{alias} gets. Register it under its own name instead (set `name` "
            f"in params.yaml, e.g. `--set name=my-{candidate.task or 'model'}`, and train "
            "again), or pass --force to replace it anyway."
        )
    client.set_registered_model_alias(settings.model_name, alias, version)
    return current
