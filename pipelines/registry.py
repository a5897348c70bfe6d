"""MLflow tracking and model registry: log runs, register bundles, move aliases, fetch bundles.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (for example a SageMaker managed MLflow
server), otherwise a local SQLite store ``sqlite:///.mlship/mlflow.db`` with artifacts under
``.mlship/artifacts``. For any SQLite store the artifacts live next to the database file.

A registered version's source is the run's ``bundle`` artifact directory: the same files as the
bundle on disk, so :func:`fetch_bundle` returns a directory :func:`pipelines.bundle.load_bundle`
verifies and loads. MLflow is imported only inside these functions.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import ConfigError, MlshipError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from pipelines.evaluate import Champion

DEFAULT_TRACKING_URI = "sqlite:///.mlship/mlflow.db"
BUNDLE_ARTIFACT = "bundle"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class RegistryError(MlshipError):
    """The MLflow registry could not be read or written."""


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registry is and which model it manages; built once at the CLI edge."""

    tracking_uri: str
    model_name: str = "mlship"
    experiment: str = "mlship"

    @classmethod
    def from_env(
        cls, model_name: str = "mlship", experiment: str = "mlship", cwd: Path | None = None
    ) -> RegistrySettings:
        """``MLFLOW_TRACKING_URI`` if set, else the SQLite store under ``<cwd>/.mlship``."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None or not uri.strip():
            db = (cwd or Path.cwd()) / ".mlship" / "mlflow.db"
            uri = f"sqlite:///{db.resolve()}"
        return cls(tracking_uri=uri, model_name=model_name, experiment=experiment)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def _client(settings: RegistrySettings) -> MlflowClient:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    from mlflow.tracking import MlflowClient

    # MLflow logs alembic migrations at INFO on every new SQLite store; keep the output readable.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = _sqlite_path(settings.tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _experiment_id(client: MlflowClient, settings: RegistrySettings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    db = _sqlite_path(settings.tracking_uri)
    location = (db.parent / "artifacts").resolve().as_uri() if db is not None else None
    return str(client.create_experiment(settings.experiment, artifact_location=location))


def _is_not_found(e: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(e, "error_code", "")) or "not found" in str(e)


def aliased(settings: RegistrySettings, alias: str = "champion") -> Champion | None:
    """The version behind ``alias`` (default champion) and its run's metrics, or None."""
    from mlflow.exceptions import MlflowException

    from pipelines.evaluate import Champion

    client = _client(settings)
    try:
        mv = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as e:
        if _is_not_found(e):
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

    client = _client(settings)
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

    client = _client(settings)
    created_model = False
    version: str | None = None
    try:
        try:
            client.get_registered_model(settings.model_name)
        except MlflowException as e:
            if not _is_not_found(e):
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
    _undo_registration(_client(settings), settings.model_name, version, False, run_id)


def promote(settings: RegistrySettings, version: str, alias: str = "champion") -> None:
    """Point ``alias`` at an existing version."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        client.get_model_version(settings.model_name, version)
    except MlflowException as e:
        known = ", ".join(str(v.version) for v in _versions(client, settings.model_name))
        raise RegistryError(
            f"Model {settings.model_name!r} has no version {version!r} in "
            f"{settings.tracking_uri} (versions: {known or 'none'}). Run `mlship models` to "
            "list them, or `mlship train` to register one."
        ) from e
    client.set_registered_model_alias(settings.model_name, alias, version)


def _versions(client: MlflowClient, name: str) -> list[Any]:
    versions = client.search_model_versions(f"name = '{name}'")
    return sorted(versions, key=lambda v: int(v.version))


@dataclass(frozen=True)
class VersionInfo:
    """One row of ``mlship models``."""

    version: str
    aliases: list[str]
    metrics: dict[str, float]
    bundle_version: str | None
    created_at_ms: int


def list_versions(settings: RegistrySettings) -> list[VersionInfo]:
    """Every registered version of the model, oldest first."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        by_alias = dict(client.get_registered_model(settings.model_name).aliases)
    except MlflowException as e:
        if _is_not_found(e):
            return []
        raise
    rows = []
    for mv in _versions(client, settings.model_name):
        metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
        rows.append(
            VersionInfo(
                version=str(mv.version),
                aliases=sorted(a for a, v in by_alias.items() if str(v) == str(mv.version)),
                metrics=metrics,
                bundle_version=mv.tags.get("mlship.bundle_version"),
                created_at_ms=int(mv.creation_timestamp),
            )
        )
    return rows


def fetch_bundle(uri: str, dest: Path, tracking_uri: str | None = None) -> Path:
    """Download the bundle of a registered version to a local directory.

    Args:
        uri: ``models:/NAME@ALIAS`` (e.g. ``models:/mlship@champion``) or ``models:/NAME/VERSION``.
        dest: Directory to download into (created if missing).
        tracking_uri: Registry to read; default ``MLFLOW_TRACKING_URI`` or the local store.

    Returns:
        The bundle directory ``dest/bundle`` (replaced if it exists), checksums verified.

    Raises:
        ConfigError: when ``uri`` is not a ``models:/`` URI.
        RegistryError: when the alias or version does not exist.
        BundleError: when the downloaded files fail verification.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from pipelines.bundle import verify_bundle

    match = _MODELS_URI.match(uri)
    if match is None:
        raise ConfigError(
            f"{uri!r} is not a registry URI; write models:/NAME@ALIAS (e.g. "
            "models:/mlship@champion) or models:/NAME/VERSION."
        )
    settings = (
        RegistrySettings(tracking_uri=tracking_uri, model_name=match["name"])
        if tracking_uri
        else RegistrySettings.from_env(model_name=match["name"])
    )
    client = _client(settings)
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            mv = client.get_model_version(match["name"], match["version"])
    except MlflowException as e:
        raise RegistryError(
            f"{uri} does not resolve in {settings.tracking_uri} ({e}). List versions and "
            "aliases with `mlship models`; `mlship promote VERSION` sets the champion."
        ) from e
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # Download into a fresh directory, so files of an earlier download never mix with these.
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=mv.source, dst_path=str(staging), tracking_uri=settings.tracking_uri
            )
        )
        verify_bundle(local)
        path = dest / BUNDLE_ARTIFACT
        if path.exists():
            shutil.rmtree(path)
        local.rename(path)
    except (MlflowException, OSError) as e:
        raise RegistryError(f"Cannot download {uri} from {mv.source} ({e}).") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _settings_for_cli() -> RegistrySettings:
    """Registry settings for ``mlship promote`` / ``models``: model name from ./params.yaml."""
    params_path = Path("params.yaml")
    if params_path.is_file():
        from pipelines.params import load_params

        registry = load_params(params_path).registry
        return RegistrySettings.from_env(registry.model_name, registry.experiment)
    return RegistrySettings.from_env()


def promote_command(version: str, alias: str = "champion") -> int:
    """``mlship promote VERSION``: move ``alias`` (default champion) to VERSION."""
    settings = _settings_for_cli()
    promote(settings, version, alias)
    print(f"{settings.model_name}@{alias} -> version {version}")
    return 0


def models_command() -> int:
    """``mlship models``: print every version with its aliases and metrics."""
    settings = _settings_for_cli()
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
