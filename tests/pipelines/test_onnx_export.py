"""ONNX export: included only with parity on the test split; served with the same interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.baseline import BUNDLE_STATISTICS
from core.bundle import ONNX_FILE, BundleError, load_bundle, write_bundle
from core.files import sha256_file
from core.manifest import ManifestDraft
from core.model import Model, load_model
from core.onnx_model import ONNX_INPUT_NAME, OnnxModel, session_predict
from pipelines.onnx_export import DEFAULT_ATOL, OnnxExportError, add_onnx, convert
from tests.compare import assert_same_prediction
from tests.factories import make_bundle


def _bundle_and_split(tmp_path: Path, kind: str) -> tuple[Path, np.ndarray]:
    bundle = make_bundle(tmp_path / kind, kind)  # type: ignore[arg-type]
    return bundle, np.load(tmp_path / f"{kind}-test_X.npy")


@pytest.mark.parametrize("kind", ["logistic", "forest", "regression"])
def test_onnx_export_is_bundled_and_predicts_like_scikit_learn(tmp_path: Path, kind: str) -> None:
    bundle_dir, X = _bundle_and_split(tmp_path, kind)
    sklearn_model = load_model(bundle_dir)

    parity = add_onnx(bundle_dir, X)

    assert parity.ok
    assert parity.rows == len(X)
    bundle = load_bundle(bundle_dir)  # verifies every checksum, model.onnx included
    assert bundle.onnx_path == bundle_dir / ONNX_FILE
    assert bundle.manifest.files[ONNX_FILE] == sha256_file(bundle_dir / ONNX_FILE)
    onnx_model = OnnxModel(bundle)
    assert onnx_model.version == sklearn_model.version
    assert_same_prediction(onnx_model.predict(X), sklearn_model.predict(X), atol=DEFAULT_ATOL)
    for i in range(0, len(X), 37):  # one row at a time, as single requests arrive
        assert_same_prediction(
            onnx_model.predict(X[i : i + 1]), sklearn_model.predict(X[i : i + 1]), atol=DEFAULT_ATOL
        )


def test_onnx_export_keeps_the_bundles_other_files(tmp_path: Path) -> None:
    bundle_dir, X = _bundle_and_split(tmp_path, "logistic")
    loaded = load_bundle(bundle_dir)
    stats = tmp_path / "statistics.json"
    stats.write_text('{"version": 0.0}')
    draft = ManifestDraft(**loaded.manifest.model_dump(exclude={"files"}))
    write_bundle(bundle_dir, loaded.model, draft, loaded.golden, {BUNDLE_STATISTICS: stats})

    add_onnx(bundle_dir, X)

    files = load_bundle(bundle_dir).manifest.files
    assert ONNX_FILE in files
    assert files[BUNDLE_STATISTICS] == sha256_file(stats)  # the baseline is still there


def test_onnx_export_that_disagrees_is_left_out_of_the_bundle(tmp_path: Path) -> None:
    bundle_dir, X = _bundle_and_split(tmp_path, "forest")
    before = {p.name: sha256_file(p) for p in bundle_dir.iterdir()}

    # onnxruntime sums the 100 trees' votes in float32: not within a zero tolerance.
    with pytest.raises(OnnxExportError) as e:
        add_onnx(bundle_dir, X, atol=0.0)

    assert "does not match scikit-learn on the 143 test rows: predictions differ" in str(e.value)
    assert "served by scikit-learn" in str(e.value)
    assert {p.name: sha256_file(p) for p in bundle_dir.iterdir()} == before
    assert load_bundle(bundle_dir).onnx_path is None


def test_exact_tree_splits_route_rows_as_scikit_learn_does(
    forest_model: Model, forest_X: np.ndarray
) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    rows = forest_X  # real rows share values with the training rows, next to the thresholds
    expected = forest_model.predict(rows)
    final = forest_model.estimator.steps[-1][1]
    raw = convert_sklearn(
        forest_model.estimator,
        initial_types=[(ONNX_INPUT_NAME, DoubleTensorType([None, 30]))],
        options={id(final): {"zipmap": False}},
    )
    classes = np.asarray(final.classes_)

    def max_diff(data: bytes) -> float:
        ours = session_predict(create_session_from_bytes(data), rows, classes)
        assert ours.probabilities is not None and expected.probabilities is not None
        return float(np.abs(ours.probabilities - expected.probabilities).max())

    # skl2onnx alone: some tree routes some row the other way (one vote in 100 moves).
    assert max_diff(raw.SerializeToString()) >= 0.01 - 1e-6
    assert max_diff(convert(forest_model.estimator, 30, is_classifier=True)) < 1e-5


def create_session_from_bytes(data: bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_onnx_model_refuses_a_bundle_without_onnx(logistic_bundle: Path) -> None:
    with pytest.raises(BundleError, match=r"carries no model\.onnx"):
        OnnxModel(load_bundle(logistic_bundle))


def test_onnx_export_needs_rows_to_check(tmp_path: Path) -> None:
    bundle_dir, X = _bundle_and_split(tmp_path, "logistic")

    with pytest.raises(OnnxExportError, match="no rows to check"):
        add_onnx(bundle_dir, X[:0])
    assert load_bundle(bundle_dir).onnx_path is None
