"""A scaler's centring is folded into the bias of the linear layer after it in the ONNX
export, only where that keeps its precision, and never past the parity check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import pipelines.onnx_export as onnx_export
from core.bundle import load_bundle
from core.model import load_model
from core.onnx_model import OnnxModel
from pipelines.onnx_export import add_onnx, export_onnx
from pipelines.onnx_scaling import fold_centring
from tests.compare import assert_same_prediction
from tests.factories import make_bundle


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(path).graph.node]


@pytest.mark.parametrize("kind", ["logistic", "regression"])
def test_export_folds_the_centring_into_one_gemm(tmp_path: Path, kind: str) -> None:
    bundle_dir = make_bundle(tmp_path / kind, kind)  # type: ignore[arg-type]
    X = np.load(tmp_path / f"{kind}-test_X.npy")
    sklearn_model = load_model(bundle_dir)

    add_onnx(bundle_dir, X)

    bundle = load_bundle(bundle_dir)
    assert bundle.onnx_path is not None
    ops = _ops(bundle.onnx_path)
    assert ops[:2] == ["Div", "Gemm"]  # the input divided by the scale, then one Gemm
    assert not {"Sub", "MatMul"} & set(ops)
    # far inside the export's tolerance (1e-5): the folded sums differ in the last bits only
    onnx_model = OnnxModel(bundle)
    assert_same_prediction(onnx_model.predict(X), sklearn_model.predict(X), atol=1e-12)
    for i in range(0, len(X), 29):
        assert_same_prediction(
            onnx_model.predict(X[i : i + 1]), sklearn_model.predict(X[i : i + 1]), atol=1e-12
        )


def _far_from_zero(tmp_path: Path) -> tuple[Any, np.ndarray]:
    """Unix timestamps with a spread of a second: the mean is 1.7e9 spreads from zero."""
    rng = np.random.default_rng(0)
    X = 1.7e9 + rng.normal(0, 1, (400, 3))
    y = (X[:, 0] - 1.7e9 + rng.normal(0, 0.5, 400) > 0).astype(int)
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, y), X


def test_features_far_from_zero_stay_unfolded(tmp_path: Path) -> None:
    estimator, X = _far_from_zero(tmp_path)
    dest = tmp_path / "model.onnx"

    parity = export_onnx(estimator, True, X, dest)

    # folded, the timestamps would cost 9 digits (3e-7 here); as written, none
    assert parity.max_abs_diff < 1e-12
    assert _ops(dest)[:3] == ["Sub", "Div", "MatMul"]


def _moves_every_score(onx: Any) -> None:  # the folded graph then disagrees
    gemm = next(node for node in onx.graph.node if node.op_type == "Gemm")
    bias = next(i for i in onx.graph.initializer if i.name == gemm.input[2])
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.5, bias.name))


def _reads_nothing(onx: Any) -> None:  # the folded graph then does not run
    next(node for node in onx.graph.node if node.op_type == "Gemm").input[0] = "nowhere"


@pytest.mark.parametrize("breakage", [_moves_every_score, _reads_nothing])
def test_a_broken_folded_graph_is_replaced_by_the_plain_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breakage: Any
) -> None:
    bundle_dir = make_bundle(tmp_path / "logistic", "logistic")
    X = np.load(tmp_path / "logistic-test_X.npy")
    estimator = load_model(bundle_dir).estimator

    def fold_and_break(onx: Any) -> bool:
        folded = fold_centring(onx)
        breakage(onx)
        return folded

    monkeypatch.setattr(onnx_export, "fold_centring", fold_and_break)
    dest = tmp_path / "model.onnx"

    parity = export_onnx(estimator, True, X, dest)

    assert parity.ok
    assert parity.max_abs_diff < 1e-12
    assert _ops(dest)[:3] == ["Sub", "Div", "MatMul"]


def _chain(scaled_is_output: bool) -> onnx.ModelProto:
    """x -> Sub(mean) -> Div(scale) -> MatMul(W) -> Add(b) -> y, the scaled values also a graph
    output when ``scaled_is_output``."""
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "W"], ["product"]),
        helper.make_node("Add", ["product", "b"], ["y"]),
    ]
    constants = {
        "mean": np.array([1.0, -2.0]),
        "scale": np.array([2.0, 0.5]),
        "W": np.array([[1.0], [0.25]]),
        "b": np.array([0.25]),
    }
    outputs = [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])]
    if scaled_is_output:
        outputs.append(helper.make_tensor_value_info("scaled", TensorProto.DOUBLE, [None, 2]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 2])],
        outputs,
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_folded_chain_computes_the_same_function() -> None:
    import onnxruntime as ort

    x = np.random.default_rng(1).normal(size=(50, 2))
    model = _chain(scaled_is_output=False)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]

    assert fold_centring(model)

    assert [n.op_type for n in model.graph.node] == ["Div", "Gemm"]
    assert {i.name for i in model.graph.initializer} == {"scale", "W", "b_folded"}
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(after, ((x - [1.0, -2.0]) / [2.0, 0.5]) @ [[1.0], [0.25]] + 0.25)


def test_a_chain_whose_scaled_values_are_used_elsewhere_is_left_alone() -> None:
    model = _chain(scaled_is_output=True)
    before = model.SerializeToString()

    assert not fold_centring(model)

    assert model.SerializeToString() == before


def test_a_value_too_large_for_the_scaler_still_overflows() -> None:
    """scikit-learn refuses a row whose scaled value overflows (Input X contains infinity); the
    division stays in the folded graph, so the row still gives no finite score to answer
    with (core.model.finite then refuses it too)."""
    import onnxruntime as ort

    # the second feature: 1e308 / 0.5 overflows (x * (0.25 / 0.5), with the division folded
    # into the weights as well, would not)
    x = np.array([[1.0, 1e308]])
    model = _chain(scaled_is_output=False)
    (before,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})

    assert fold_centring(model)

    (after,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert not np.isfinite(before).any()
    assert not np.isfinite(after).any()
