"""The one model-URI resolver: a directory, a ``model.tar.gz``, ``s3://`` or ``models:/``.

Serving (``MLSHIP_MODEL_URI``), batch scoring (``mlship predict --model``) and the release
tools all turn a model URI into a local bundle directory or archive here, so every side accepts
the same URIs with the same messages. MLflow is needed only for ``models:/`` and imported only
then (the serving image leaves it out and says so).

:func:`local_bundle` is the form for a process that keeps the bundle while it runs (``serve``):
it hands out an extracted bundle directory and removes what it downloaded or extracted when
the block ends, however it ends.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.bundle import ARCHIVE_NAME, extract_archive
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


@contextmanager
def local_bundle(
    uri: str, cache_dir: Path | None = None, what: str = "MLSHIP_MODEL_URI"
) -> Iterator[Path]:
    """A local bundle directory for ``uri`` while the block runs.

    A remote bundle is downloaded, and an archive extracted, into one fresh directory (under
    ``cache_dir``, else the system temp dir) that is removed when the block ends: normally, by
    an error, or because the bundle was refused. A local directory is used in place and never
    removed; a path that is neither is handed out as it is, for the loader to refuse.

    Raises:
        ModelLoadError: when the URI cannot be resolved or the archive cannot be extracted.
    """
    workdir: Path | None = None
    try:
        if is_s3_uri(uri) or uri.startswith(REGISTRY_SCHEME):
            workdir = _workdir(cache_dir)
            local = (
                _from_s3(uri, workdir, what)
                if is_s3_uri(uri)
                else _from_registry(uri, workdir, what)
            )
        else:
            local = resolve_model_uri(uri, cache_dir, what)
        if local.is_file() and local.name.endswith(ARCHIVE_SUFFIXES):
            workdir = workdir or _workdir(cache_dir)
            try:
                local = extract_archive(local, workdir / "bundle")
            except MlshipError as e:
                raise ModelLoadError(f"Cannot load {what}={uri}: {e}") from e
        yield local
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


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
