"""The model registry's write side: log runs, register bundles, move aliases.

Reading (settings, fetching a registered bundle, listing versions) is
:mod:`core.registry`, shared with serving and batch scoring. A registered version's source is
the run's ``bundle`` artifact directory, the same files as the bundle on disk. MLflow is
imported only inside these functions.
"""

from __future__ import annotations

import time
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


def aliased(settings: RegistrySettings, alias: str = "champion") -> Champion | None:
    """The version behind ``alias`` (default champion) and its run's metrics, or None."""
    from mlflow.exceptions import MlflowException

    from pipelines.evaluate import Champion

    client = mlflow_client(settings)
    try:
        mv = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as e:
        if is_not_found(e):
            return None
        raise RegistryError(f"Cannot read alias {alias!r} from {settings.tracking_uri}: {e}") from e
    metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    return Champion(version=str(mv.version), metrics=metrics)


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
        mv = client.create_model_version(
            settings.model_name,
            source=f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}",
            run_id=run_id,
            tags=tags,
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


def promote(settings: RegistrySettings, version: str, alias: str = "champion") -> None:
    """Point ``alias`` at an existing version."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    try:
        client.get_model_version(settings.model_name, version)
    except MlflowException as e:
        known = ", ".join(str(v.version) for v in sorted_versions(client, settings.model_name))
        raise RegistryError(
            f"Model {settings.model_name!r} has no version {version!r} in "
            f"{settings.tracking_uri} (versions: {known or 'none'}). Run `mlship models` to "
            "list them, or `mlship train` to register one."
        ) from e
    client.set_registered_model_alias(settings.model_name, alias, version)
