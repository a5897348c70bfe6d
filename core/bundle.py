"""The model bundle: the one contract between the pipelines and the serving app.

A bundle is a directory (and the same files at the root of a ``model.tar.gz``, SageMaker's
layout, extracted to ``/opt/ml/model``) holding:

- ``model.skops``: the fitted scikit-learn estimator, saved with skops (never pickle);
- ``manifest.json``: what the model is (see :class:`Manifest`), including the SHA-256 of every
  other file;
- ``golden.json``: a few held-out rows with the predictions recorded at training time, used by
  post-deploy smoke tests;
- optionally ``model.onnx``: the same model exported for onnxruntime;
- optionally ``baseline/statistics.json`` and ``baseline/constraints.json``: the training
  features' data-quality baseline in SageMaker Model Monitor's formats (:mod:`core.baseline`).

Every file but the manifest, in subdirectories too, is listed in ``manifest.files`` by its
relative path with ``/`` separators, and verified against its SHA-256 before anything loads.

This module is imported by the serving app, so it may only use the serving runtime: the
standard library, numpy, pydantic and skops. No pandas, MLflow or DVC here.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from core.errors import MlshipError
from core.files import sha256_file
from core.manifest import (
    FORMAT_VERSION,
    Golden,
    Manifest,
    ManifestDraft,
)

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.json"
ONNX_FILE = "model.onnx"
ARCHIVE_NAME = "model.tar.gz"

# skops refuses to load any type it does not know to be safe; these prefixes are the only
# extra ones a bundle may contain (a fitted scikit-learn Pipeline and the numpy types in it).
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class BundleError(MlshipError):
    """A bundle is missing, incomplete, tampered with or not a bundle at all."""


@dataclass(frozen=True)
class Bundle:
    """A verified, loaded bundle (``model`` is None when loaded without the estimator)."""

    path: Path
    manifest: Manifest
    model: Any
    golden: Golden

    @property
    def onnx_path(self) -> Path | None:
        path = self.path / ONNX_FILE
        return path if ONNX_FILE in self.manifest.files else None


def _unsafe_name(name: str) -> bool:
    """A listed file name that is not a plain relative path inside the bundle."""
    return "\\" in name or any(part in ("", ".", "..") for part in name.split("/"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_bundle(
    out_dir: Path,
    model: Any,
    manifest: ManifestDraft,
    golden: Golden,
    extra_files: Mapping[str, Path] | None = None,
) -> Path:
    """Write a bundle directory and its ``model.tar.gz``, atomically.

    Everything is written into a temporary sibling directory first and renamed into place at
    the end, so a failure leaves no half-written bundle that looks complete.

    Args:
        out_dir: The bundle directory to create; it must not exist, or be an earlier bundle
            (which is replaced).
        model: The fitted estimator.
        manifest: What the model is; the file checksums are added here.
        golden: Held-out rows with their recorded predictions.
        extra_files: Other files to include, by their relative path in the bundle (for
            example ``model.onnx`` or ``baseline/statistics.json``).

    Returns:
        The bundle directory. The archive is ``out_dir / "model.tar.gz"``.
    """
    import skops.io as sio

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not (out_dir / MANIFEST_FILE).exists():
        raise BundleError(
            f"{out_dir} exists and is not an mlship bundle; refusing to overwrite it. "
            "Choose another --out directory or remove it."
        )
    reserved = (MODEL_FILE, GOLDEN_FILE, MANIFEST_FILE, ARCHIVE_NAME)
    for name in extra_files or {}:
        if _unsafe_name(name) or name in reserved:
            raise BundleError(
                f"Cannot add {name!r} to a bundle: give a relative path inside it (no '..', "
                f"no leading '/') other than {', '.join(reserved)}."
            )
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        sio.dump(model, staging / MODEL_FILE)
        (staging / GOLDEN_FILE).write_text(golden.model_dump_json(indent=2))
        for name, src in (extra_files or {}).items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, staging / name)
        files = {
            p.relative_to(staging).as_posix(): sha256_file(p)
            for p in sorted(staging.rglob("*"))
            if p.is_file() and p.name != MANIFEST_FILE
        }
        full = Manifest(**dict(manifest), files=files)
        (staging / MANIFEST_FILE).write_text(
            json.dumps(full.model_dump(mode="json"), indent=2, default=_json_default)
        )
        _write_archive(staging, staging / ARCHIVE_NAME)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _write_archive(src: Path, archive: Path) -> None:
    """Pack the bundle files at the archive root (SageMaker extracts to /opt/ml/model);
    subdirectories are added with their files, in name order, every member readable by
    anyone (:func:`_readable_by_anyone`)."""
    tmp = archive.with_suffix(".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        for p in sorted(src.iterdir()):
            if p.name in (ARCHIVE_NAME, tmp.name):
                continue
            tar.add(p, arcname=p.name, filter=_readable_by_anyone)
    os.replace(tmp, archive)


def _readable_by_anyone(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member owned by root, 0644 (a directory 0755), whoever wrote it with whatever umask.

    SageMaker extracts the archive into /opt/ml/model itself (how is not documented; tar run by
    root keeps the modes and owners an archive holds), while the images run as uid 10001: a
    file written under umask 077 (0600) by the uid of the machine that trained would be
    unreadable to the server there (tests/core/test_bundle.py extracts one with GNU tar as
    root and reads it as 10001)."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mode = 0o755 if member.isdir() else 0o644
    return member


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a ``model.tar.gz`` into ``dest`` safely (no absolute paths, links or ``..``)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(
            f"{archive} is not a readable model.tar.gz ({e}). Rebuild it with `mlship train`."
        ) from e
    return dest


def read_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json`` of a bundle directory."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(
            f"{path} is not an mlship bundle: {MANIFEST_FILE} is missing. Point the model URI at "
            "a directory or model.tar.gz written by `mlship train`."
        )
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    except ValidationError as e:
        raise BundleError(
            f"{manifest_path} is not a valid mlship manifest: {e.errors()[0]['msg']} at "
            f"{'.'.join(str(x) for x in e.errors()[0]['loc'])}. Rebuild the bundle with "
            "`mlship train`."
        ) from e
    if manifest.format_version != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path} has bundle format {manifest.format_version}; this mlship reads "
            f"format {FORMAT_VERSION}. Retrain with this version of mlship."
        )
    return manifest


def verify_bundle(path: Path) -> Manifest:
    """Check that every file the manifest lists is present and unchanged.

    Raises:
        BundleError: naming the first missing or modified file.
    """
    path = Path(path)
    manifest = read_manifest(path)
    for required in (MODEL_FILE, GOLDEN_FILE):
        if required not in manifest.files:
            raise BundleError(
                f"{path}: the manifest lists no {required}; the bundle is incomplete. "
                "Rebuild it with `mlship train`."
            )
    for name, expected in manifest.files.items():
        if _unsafe_name(name):
            raise BundleError(
                f"{path}: the manifest lists {name!r}, which is not a path inside the bundle. "
                "Refusing to load it; rebuild the bundle with `mlship train`."
            )
        file = path / name
        if not file.is_file():
            raise BundleError(
                f"{path} is incomplete: {name} is listed in the manifest but missing. "
                "Copy the whole bundle, or rebuild it with `mlship train`."
            )
        actual = sha256_file(file)
        if actual != expected:
            raise BundleError(
                f"{path}/{name} does not match its checksum in the manifest (expected "
                f"{expected[:12]}…, found {actual[:12]}…): the bundle was modified after "
                "training. Refusing to load it; rebuild it with `mlship train`."
            )
    return manifest


def load_bundle(path: Path | str, *, estimator: bool = True) -> Bundle:
    """Verify and load a bundle from a directory or a ``model.tar.gz``.

    A ``.tar.gz`` is extracted into a fresh temporary directory before loading (the archive's
    own directory may be read-only, as ``/opt/ml/model`` is). That copy lives as long as the
    returned :class:`Bundle` (its estimator may be loaded from it later) and is removed when
    the bundle is collected or the process exits, and at once when loading fails: every
    `mlship predict model.tar.gz` left a copy of the model in the temp directory.

    Args:
        path: Bundle directory or archive.
        estimator: Load the scikit-learn model too. Without it (``Bundle.model`` is None) the
            files are still verified, and no scikit-learn or skops import is paid: a server
            that predicts with the bundle's ``model.onnx`` starts in a fraction of the time.
            :func:`load_estimator` loads it later.

    Raises:
        BundleError: when the bundle is missing, incomplete, modified or holds untrusted types.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(
            f"No model bundle at {path}. Train one with `mlship train`, or set MLSHIP_MODEL_URI "
            "to a bundle directory, a model.tar.gz, an s3:// URI or models:/name@alias."
        )
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz")):
            raise BundleError(f"{path} is a file but not a model.tar.gz archive.")
        extracted = Path(tempfile.mkdtemp(prefix="mlship-bundle-"))
        try:
            bundle = _load_directory(extract_archive(path, extracted), estimator)
        except BaseException:
            shutil.rmtree(extracted, ignore_errors=True)
            raise
        weakref.finalize(bundle, shutil.rmtree, extracted, ignore_errors=True)
        return bundle
    return _load_directory(path, estimator)


def _load_directory(path: Path, estimator: bool) -> Bundle:
    manifest = verify_bundle(path)
    golden = Golden.model_validate_json((path / GOLDEN_FILE).read_bytes())
    model = load_estimator(path) if estimator else None
    return Bundle(path=path, manifest=manifest, model=model, golden=golden)


def load_estimator(path: Path) -> Any:
    """Load ``model.skops`` of a verified bundle directory, refusing untrusted types."""
    import skops.io as sio  # imports scikit-learn: only once the bundle is known to be sound

    model_path = path / MODEL_FILE
    try:
        untrusted = sio.get_untrusted_types(file=model_path)
    except Exception as e:  # skops raises several types for a corrupt file
        raise BundleError(f"{model_path} is not a readable skops file ({e}).") from e
    refused = [t for t in untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES)]
    if refused:
        raise BundleError(
            f"{model_path} contains types mlship does not trust: {', '.join(refused)}. Only "
            "scikit-learn, numpy and scipy objects are loaded."
        )
    return sio.load(model_path, trusted=untrusted)
