"""The one model-URI resolver: a directory, a ``model.tar.gz``, ``s3://`` or ``models:/``.

Serving (``MLSHIP_MODEL_URI``), batch scoring (``mlship predict --model``) and the release
tools all turn a model URI into a local bundle directory or archive here, so every side accepts
the same URIs with the same messages. MLflow is needed only for ``models:/`` and imported only
then (the serving image leaves it out and says so).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from core.bundle import ARCHIVE_NAME
from core.errors import MlshipError, ModelLoadError
from core.registry import REGISTRY_SCHEME
from core.s3 import download, is_s3_uri

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def resolve_model_uri(
    uri: str, cache_dir: Path | None = None, what: str = "MLSHIP_MODEL_URI"
) -> Path:
    """Return a local bundle directory or archive for ``uri``, downloading remote ones.

    Args:
        uri: Bundle directory, ``model.tar.gz``, ``s3://bucket/key`` (an archive, or a prefix
            holding ``model.tar.gz``, SageMaker's model-data layout) or ``models:/NAME@ALIAS``.
        cache_dir: Where downloads go (a fresh directory under it); the system temp dir if None.
        what: How the URI was given (a variable or an option), named in error messages.

    Raises:
        ModelLoadError: when the URI cannot be resolved, naming the URI and the fix.
    """
    if is_s3_uri(uri):
        return _from_s3(uri, _workdir(cache_dir), what)
    if uri.startswith(REGISTRY_SCHEME):
        return _from_registry(uri, _workdir(cache_dir), what)
    if "://" in uri:
        raise ModelLoadError(
            f"{what}={uri!r}: unsupported scheme. Use a bundle directory, a "
            "model.tar.gz, s3://bucket/key or models:/name@alias."
        )
    return Path(uri)


def _workdir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="mlship-model-", dir=cache_dir))
    return Path(tempfile.mkdtemp(prefix="mlship-model-"))


def _from_s3(uri: str, workdir: Path, what: str) -> Path:
    if not uri.endswith(ARCHIVE_SUFFIXES):
        uri = uri.rstrip("/") + "/" + ARCHIVE_NAME
    try:
        return download(uri, workdir / ARCHIVE_NAME)
    except MlshipError as e:
        raise ModelLoadError(f"{what}: {e}") from e


def _from_registry(uri: str, workdir: Path, what: str) -> Path:
    if importlib.util.find_spec("mlflow") is None:
        raise ModelLoadError(
            f"{what}={uri!r} needs MLflow, which is not installed here (the serving "
            "image leaves it out). Point it at the bundle's s3:// archive, or "
            "install the `pipelines` dependency group."
        )
    from core.registry import fetch_bundle

    try:
        return Path(fetch_bundle(uri, workdir / "bundle"))
    except MlshipError as e:
        raise ModelLoadError(f"{what}={uri!r}: {e}") from e
