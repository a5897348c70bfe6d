"""The model registry's read side: where it is, and fetching a registered bundle.

``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` URIs resolve here for every side (serving,
batch scoring, the release tools); ``pipelines/registry.py`` holds the write side (runs,
registration, aliases). The tracking URI is ``MLFLOW_TRACKING_URI`` when set (for example a
SageMaker managed MLflow server), otherwise a local SQLite store ``.mlship/mlflow.db`` with
artifacts next to it. A registered version's source is the run's ``bundle`` artifact
directory, the same files as the bundle on disk. MLflow is imported only inside functions, so
the serving image (which leaves MLflow out) can import this module.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, MlshipError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

BUNDLE_ARTIFACT = "bundle"
REGISTRY_SCHEME = "models:/"
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


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def mlflow_client(settings: RegistrySettings) -> MlflowClient:
    """An MLflow client for the tracking server and registry of ``settings``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    from mlflow.tracking import MlflowClient

    # MLflow logs alembic migrations at INFO on every new SQLite store; keep the output readable.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = sqlite_path(settings.tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def is_not_found(e: Exception) -> bool:
    """True when MLflow says the model, version or alias does not exist."""
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(e, "error_code", "")) or "not found" in str(e)


def sorted_versions(client: MlflowClient, name: str) -> list[Any]:
    """Every version of model ``name``, oldest first."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


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

    client = mlflow_client(settings)
    try:
        by_alias = dict(client.get_registered_model(settings.model_name).aliases)
    except MlflowException as e:
        if is_not_found(e):
            return []
        raise
    rows = []
    for mv in sorted_versions(client, settings.model_name):
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

    from core.bundle import verify_bundle

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
    client = mlflow_client(settings)
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
