"""``MLSHIP_MODEL_URI`` to a local bundle: a directory, a ``model.tar.gz``, ``s3://`` or
``models:/name@alias`` (MLflow, imported only for that scheme and only where installed)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from app.errors import ModelLoadError
from pipelines.bundle import ARCHIVE_NAME
from pipelines.errors import MlshipError
from pipelines.s3 import download, is_s3_uri

REGISTRY_SCHEME = "models:/"


def resolve_model_uri(uri: str, cache_dir: Path | None = None) -> Path:
    """Return a local bundle directory or archive for ``uri``, downloading remote ones.

    Raises:
        ModelLoadError: when the URI cannot be resolved, naming the URI and the fix.
    """
    if is_s3_uri(uri):
        return _from_s3(uri, _workdir(cache_dir))
    if uri.startswith(REGISTRY_SCHEME):
        return _from_registry(uri, _workdir(cache_dir))
    if "://" in uri:
        raise ModelLoadError(
            f"MLSHIP_MODEL_URI={uri!r}: unsupported scheme. Use a bundle directory, a "
            "model.tar.gz, s3://bucket/key or models:/name@alias."
        )
    return Path(uri)


def _workdir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="mlship-model-", dir=cache_dir))
    return Path(tempfile.mkdtemp(prefix="mlship-model-"))


def _from_s3(uri: str, workdir: Path) -> Path:
    # s3://bucket/prefix/ (a SageMaker model data prefix) means the archive under it.
    if not uri.endswith((".tar.gz", ".tgz")):
        uri = uri.rstrip("/") + "/" + ARCHIVE_NAME
    try:
        return download(uri, workdir / ARCHIVE_NAME)
    except MlshipError as e:
        raise ModelLoadError(f"MLSHIP_MODEL_URI: {e}") from e


def _from_registry(uri: str, workdir: Path) -> Path:
    if importlib.util.find_spec("mlflow") is None:
        raise ModelLoadError(
            f"MLSHIP_MODEL_URI={uri!r} needs MLflow, which is not installed here (the serving "
            "image leaves it out). Point MLSHIP_MODEL_URI at the bundle's s3:// archive, or "
            "install the `pipelines` dependency group."
        )
    try:
        from pipelines.registry import fetch_bundle
    except ImportError as e:
        raise ModelLoadError(
            f"MLSHIP_MODEL_URI={uri!r}: the model registry module is unavailable ({e})."
        ) from e
    try:
        return Path(fetch_bundle(uri, workdir / "bundle"))
    except MlshipError as e:
        raise ModelLoadError(f"MLSHIP_MODEL_URI={uri!r}: {e}") from e
