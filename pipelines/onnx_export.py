"""Export a bundle's model to ONNX, and include it only if it predicts what the model predicts.

skl2onnx converts most scikit-learn pipelines of numeric features; tree ensembles are then
adjusted to split exactly as scikit-learn does (:func:`exact_tree_splits`), and a scaler's
centring is folded into the bias of a linear layer after it (``pipelines/onnx_scaling.py``).
The conversion is checked on the held-out rows before the file may enter the bundle: class
labels must be identical and probabilities (or regression values) within ``atol``, since some
operators compute in float32. A model skl2onnx cannot convert, or an export that disagrees, is
left out with the reason; the bundle stays valid and is served by scikit-learn.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import GOLDEN_FILE, MODEL_FILE, ONNX_FILE, write_bundle
from core.errors import MlshipError
from core.manifest import ManifestDraft
from core.model import load_model, sklearn_predict
from core.onnx_model import ONNX_INPUT_NAME, create_session, session_predict
from pipelines.onnx_imputer import impute_with_where
from pipelines.onnx_scaling import fold_centring

# float32 sums of 100 tree votes stay well within this; a tree that routes a row differently
# moves a probability by 1/n_trees and is caught.
DEFAULT_ATOL = 1e-5


class OnnxExportError(MlshipError):
    """The model cannot be exported to ONNX, or the export does not predict the same."""


@dataclass(frozen=True)
class Parity:
    """How an ONNX export compares with the scikit-learn model on the check rows."""

    rows: int
    labels_equal: bool
    max_abs_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.labels_equal and self.max_abs_diff <= self.atol


def convert(
    estimator: Any, n_features: int, is_classifier: bool, target_opset: int | None = None
) -> bytes:
    """A fitted estimator as a serialised ONNX graph with a float64 ``input``, a scaler's
    centring folded into the linear layer after it (:func:`pipelines.onnx_scaling.
    fold_centring`).

    Raises:
        OnnxExportError: when skl2onnx has no converter for a step of the model.
    """
    onx = _convert(estimator, n_features, is_classifier, target_opset)
    fold_centring(onx)
    data: bytes = onx.SerializeToString()
    return data


def _convert(estimator: Any, n_features: int, is_classifier: bool, target_opset: int | None) -> Any:
    """The ``ModelProto`` skl2onnx writes, its tree splits made exact."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    if is_classifier and not hasattr(estimator, "predict_proba"):
        raise OnnxExportError(
            f"{type(estimator).__name__} has no predict_proba; only probabilistic classifiers "
            "are exported."
        )
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options: dict[int, dict[str, Any]] | None = (
        {id(final): {"zipmap": False}} if is_classifier else None
    )
    try:
        onx = convert_sklearn(
            estimator,
            initial_types=[(ONNX_INPUT_NAME, DoubleTensorType([None, n_features]))],
            options=options,
            target_opset=target_opset,
        )
    except (RuntimeError, NameError, TypeError, ValueError, NotImplementedError) as e:
        raise OnnxExportError(
            f"skl2onnx cannot convert {type(final).__name__}: {e}. The bundle is served by "
            "scikit-learn."
        ) from e
    exact_tree_splits(onx, final)
    impute_with_where(onx)
    return onx


def exact_tree_splits(onx: Any, final: Any) -> None:
    """Make the graph's tree ensembles split rows exactly as scikit-learn does.

    scikit-learn casts the input to float32, then tests ``x <= threshold`` against float64
    thresholds; skl2onnx rounds each threshold to the nearest float32 and compares the float64
    input, so a value between the two roundings goes the other way (a forest's probability then
    moves by 1/n_trees). Here the input of each tree ensemble is cast to float32, and every
    threshold becomes the largest float32 not above scikit-learn's: for any float32 ``x``,
    ``x <= t`` and ``x <= t32`` then agree. Graphs without tree ensembles are left as they are.
    """
    from onnx import TensorProto, helper

    trees = getattr(final, "estimators_", None)
    if trees is None and hasattr(final, "tree_"):
        trees = [final]
    if trees is None or not all(hasattr(t, "tree_") for t in np.ravel(trees)):
        return
    trees = list(np.ravel(trees))
    graph = onx.graph
    for position, node in enumerate(list(graph.node)):
        if node.op_type not in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:
            return  # a layout this does not know: the parity check decides
        values = []
        for tree_id, node_id, mode, value in zip(
            attrs["nodes_treeids"].ints,
            attrs["nodes_nodeids"].ints,
            attrs["nodes_modes"].strings,
            attrs["nodes_values"].floats,
            strict=True,
        ):
            if mode == b"LEAF":
                values.append(value)
                continue
            if mode != b"BRANCH_LEQ":
                return
            threshold = float(trees[tree_id].tree_.threshold[node_id])
            t32 = np.float32(threshold)
            if float(t32) > threshold:
                t32 = np.nextafter(t32, np.float32(-np.inf))
            values.append(float(t32))
        del attrs["nodes_values"].floats[:]
        attrs["nodes_values"].floats.extend(values)
        cast_output = f"{node.input[0]}_as_float32"
        cast = helper.make_node(
            "Cast", [node.input[0]], [cast_output], to=TensorProto.FLOAT, name=f"{node.name}_cast"
        )
        node.input[0] = cast_output
        graph.node.insert(position, cast)
        return


def check_parity(
    estimator: Any, is_classifier: bool, onnx_path: Path, X: np.ndarray, atol: float = DEFAULT_ATOL
) -> Parity:
    """Compare the ONNX export with the scikit-learn model on ``X``."""
    session = create_session(onnx_path)
    classes = np.asarray(estimator.classes_) if is_classifier else None
    ours = session_predict(session, X, classes)
    ref = sklearn_predict(estimator, X, has_probabilities=is_classifier)
    if ref.probabilities is not None and ours.probabilities is not None:
        labels_equal = bool(np.array_equal(ours.labels, ref.labels))
        diff = float(np.max(np.abs(ours.probabilities - ref.probabilities)))
    else:
        labels_equal = True  # regression: the values are compared below
        diff = float(np.max(np.abs(ours.labels.astype(np.float64) - ref.labels)))
    return Parity(rows=int(X.shape[0]), labels_equal=labels_equal, max_abs_diff=diff, atol=atol)


def export_onnx(
    estimator: Any,
    is_classifier: bool,
    X_check: np.ndarray,
    dest: Path,
    atol: float = DEFAULT_ATOL,
    label: str = "the model",
) -> Parity:
    """Write a fitted estimator as ONNX to ``dest`` after checking parity on ``X_check``.

    Args:
        estimator: The fitted scikit-learn model (classifiers must have ``predict_proba``).
        is_classifier: Compare labels and probabilities (else regression values).
        X_check: Held-out rows, columns in model input order.
        dest: The file to write.
        atol: Largest difference allowed in probabilities or values.
        label: How the model is named in messages.

    Raises:
        OnnxExportError: when the model cannot be converted or the export disagrees (nothing
            is left at ``dest`` then).
    """
    if X_check.shape[0] == 0:
        raise OnnxExportError("no rows to check the ONNX export against; pass the test split.")
    onx = _convert(estimator, int(X_check.shape[1]), is_classifier, None)
    plain = onx.SerializeToString()
    if fold_centring(onx):
        # A folded graph sums in another order: when it does not pass (or does not run), the
        # graph as skl2onnx wrote it still may.
        dest.write_bytes(onx.SerializeToString())
        with contextlib.suppress(OnnxExportError):
            parity = _checked_parity(estimator, is_classifier, dest, X_check, atol, label)
            if parity.ok:
                return parity
    dest.write_bytes(plain)
    parity = _checked_parity(estimator, is_classifier, dest, X_check, atol, label)
    if not parity.ok:
        dest.unlink()
        what = "class labels differ" if not parity.labels_equal else "predictions differ"
        raise OnnxExportError(
            f"the ONNX export of {label} does not match scikit-learn on "
            f"the {parity.rows} test rows: {what} (largest difference {parity.max_abs_diff:.3g}, "
            f"tolerance {atol:g}). It is left out; the bundle is served by scikit-learn."
        )
    return parity


def _checked_parity(
    estimator: Any, is_classifier: bool, dest: Path, X_check: np.ndarray, atol: float, label: str
) -> Parity:
    """:func:`check_parity` of the graph at ``dest``; a graph onnxruntime cannot run is
    removed and refused."""
    try:
        parity = check_parity(estimator, is_classifier, dest, X_check, atol)
    except Exception as e:  # onnxruntime raises its own types for graphs it cannot run
        dest.unlink()
        raise OnnxExportError(
            f"onnxruntime cannot run the ONNX export of {label} "
            f"({type(e).__name__}: {e}). It is left out; the bundle is served by scikit-learn."
        ) from e
    return parity


def add_onnx(bundle_dir: Path, X_test: np.ndarray, atol: float = DEFAULT_ATOL) -> Parity:
    """Export the model of an existing bundle and rewrite it with ``model.onnx`` included.

    Training exports before it writes the bundle (:func:`export_onnx`); this is for bundles
    written without ONNX (``output.onnx: false``, or an older mlship).

    The bundle is rewritten atomically by :func:`core.bundle.write_bundle` (checksums
    recomputed); on any failure it is left as it was.

    Raises:
        OnnxExportError: when the model cannot be exported or the export disagrees.
    """
    model = load_model(bundle_dir)
    with tempfile.TemporaryDirectory(prefix="mlship-onnx-") as tmp:
        onnx_path = Path(tmp) / ONNX_FILE
        parity = export_onnx(
            model.estimator,
            model.is_classifier,
            X_test,
            onnx_path,
            atol,
            label=f"{model.name} {model.version}",
        )
        manifest = ManifestDraft(**model.manifest.model_dump(exclude={"files"}))
        # The bundle's other files (its data-quality baseline) are kept as they are.
        kept = {
            name: Path(bundle_dir) / name
            for name in model.manifest.files
            if name not in (MODEL_FILE, GOLDEN_FILE, ONNX_FILE)
        }
        write_bundle(
            Path(bundle_dir),
            model.estimator,
            manifest,
            model.bundle.golden,
            extra_files={**kept, ONNX_FILE: onnx_path},
        )
    return parity
