"""Package a model that passed the gate: bundle it, register it, install it, atomically.

The bundle is written once, into a hidden staging directory beside the output (with a
parity-checked ``model.onnx`` when the export succeeds), logged and registered in MLflow, and
only then renamed into place. A failure at any step leaves the previous bundle where it was
and nothing registered.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.bundle import ONNX_FILE, write_bundle
from core.manifest import Golden, ManifestDraft

if TYPE_CHECKING:
    from core.registry import RegistrySettings
    from pipelines.baseline import Baseline


def golden_rows(
    model: Any, X: np.ndarray, raw: list[list[float | str | None]], task: str, rows: int = 20
) -> Golden:
    """The first ``rows`` held-out rows, as a client sends them (``raw``), with the
    predictions the model gives them now (computed on their encoded form ``X``)."""
    sample = X[:rows]
    return Golden(
        inputs=raw[:rows],
        predictions=np.asarray(model.predict(sample)).tolist(),
        probabilities=model.predict_proba(sample).tolist() if task == "classification" else None,
    )


def install(staged: Path, out: Path) -> None:
    """Move a staged bundle to ``out``, replacing an earlier bundle there."""
    trash = None
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(trash)
    staged.rename(out)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class Registration:
    """Where and how a passing run is registered."""

    settings: RegistrySettings
    alias: str
    tags: dict[str, str]


def export_onnx_note(model: Any, task: str, X_test: np.ndarray, dest: Path) -> str:
    """Export a parity-checked model.onnx to ``dest``; says what happened (nothing is
    written when the export is skipped)."""
    try:
        from pipelines.onnx_export import OnnxExportError, export_onnx
    except ImportError:  # skl2onnx is in the pipelines group; a trimmed install may lack it
        return "ONNX export skipped: skl2onnx is not installed (uv sync --group pipelines)"
    try:
        parity = export_onnx(model, task == "classification", X_test, dest)
    except OnnxExportError as e:
        return f"ONNX export skipped: {e}"
    return (
        f"model.onnx added: matches scikit-learn on {parity.rows} test rows "
        f"(largest difference {parity.max_abs_diff:.2g})"
    )


def package(
    out_dir: Path,
    model: Any,
    manifest: ManifestDraft,
    golden: Golden,
    registry: Registration | None,
    onnx_check: np.ndarray | None,
    progress: Callable[[str], None],
    baseline: Baseline | None = None,
) -> tuple[str | None, str | None]:
    """Write the bundle to staging, log and register it, then move it to ``out_dir``.

    Args:
        onnx_check: Test rows to verify an ONNX export against (None: no ONNX export).
        baseline: The training features' data-quality baseline, written into the bundle as
            ``baseline/statistics.json`` and ``baseline/constraints.json`` (None: none).

    Returns:
        The registered version and the run id (None, None without a registry).
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    run_id = version = None
    try:
        extra: dict[str, Path] = {}
        if onnx_check is not None:
            onnx_path = staging / ONNX_FILE
            progress(export_onnx_note(model, manifest.task, onnx_check, onnx_path))
            if onnx_path.exists():
                extra[ONNX_FILE] = onnx_path
        if baseline is not None:
            # its own directory: the bundle's name under staging may be anything, "baseline" too
            extra.update(baseline.write(Path(tempfile.mkdtemp(dir=staging))))
        staged = write_bundle(staging / out_dir.name, model, manifest, golden, extra)
        if registry is not None:
            from pipelines.registry import log_run, register

            run_id = log_run(
                registry.settings, manifest.params, manifest.metrics, registry.tags, staged
            )
            version = register(
                registry.settings,
                run_id,
                registry.alias,
                {"mlship.bundle_version": manifest.version},
            )
        install(staged, out_dir)
    except BaseException:
        # registered but not installed (or interrupted): take the version back out
        if registry is not None and version is not None and run_id is not None:
            from pipelines.registry import delete_version

            delete_version(registry.settings, version, run_id)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version, run_id
