"""Fold a scaler's centring into the linear layer after it, in a converted graph.

skl2onnx converts ``Pipeline([StandardScaler(), LogisticRegression()])`` (and any linear model
after a scaler) into ``Sub(x, mean) -> Div(., scale) -> MatMul(., W) -> Add(., b)``.
onnxruntime runs float64 ``Sub`` and ``Div`` one element at a time: for the 30-feature logistic
model they took 6.9 of the graph's 10.7 ms per 100,000 rows, against 0.8 ms for the MatMul.

The subtraction moves into the bias: ``((x - mean) / scale) @ W + b`` is
``(x / scale) @ W + (b - (mean / scale) @ W)``, one ``Gemm`` after the division (``Gemm`` adds
the bias as it writes the product, where ``Add`` took another pass). The division stays, so a
value too large for the scaler still overflows to infinity as it does in scikit-learn, and the
row is refused (``core.model.finite``) instead of answered: folding the division into ``W``
as well was faster still, but answered such rows with a saturated probability.

The sums then run in a different order, so the results move in the last bits; the export's
parity check on the test split decides as for any graph, and :func:`pipelines.onnx_export.
export_onnx` keeps the graph as skl2onnx wrote it when the folded one does not pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The bias absorbs mean / scale times the weights: a feature whose mean is m scales away from
# zero costs about m machine epsilons of the score. Up to this many (1e4, about 2e-12 of the
# score) folding is kept; beyond it (timestamps, say: 1.7e9 seconds with a spread of a few)
# the graph stays as skl2onnx wrote it.
MAX_FOLDED_SHIFT = 1e4


def fold_centring(onx: Any) -> bool:
    """Rewrite every ``Sub(x, mean) -> Div|Mul(., scale) -> MatMul(., W) -> Add(., b)`` chain
    of float64 constants in ``onx`` (a ``ModelProto``, changed in place) into
    ``Div|Mul(x, scale) -> Gemm(., W, b')``. Returns True when a chain was folded."""
    graph = onx.graph
    folded = False
    for matmul in [n for n in graph.node if n.op_type == "MatMul"]:
        folded |= _fold(graph, matmul)
    if folded:
        used = {name for node in graph.node for name in node.input}
        kept = [init for init in graph.initializer if init.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        names = {name for node in graph.node for name in node.output}
        info = [v for v in graph.value_info if v.name in names]
        del graph.value_info[:]
        graph.value_info.extend(info)
    return folded


def _fold(graph: Any, matmul: Any) -> bool:
    from onnx import helper, numpy_helper

    constants = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_feeds(node: Any, user: Any) -> bool:
        out = node.output[0]
        return out not in outputs and [id(n) for n in consumers.get(out, [])] == [id(user)]

    def constant(name: str) -> np.ndarray | None:
        init = constants.get(name)
        if init is None:
            return None
        value = numpy_helper.to_array(init)
        return value if value.dtype == np.float64 else None

    weights = constant(matmul.input[1])
    scaling = producer.get(matmul.input[0])
    if weights is None or weights.ndim != 2 or scaling is None:
        return False
    centring = producer.get(scaling.input[0])
    if scaling.op_type not in ("Div", "Mul") or centring is None or centring.op_type != "Sub":
        return False
    add = consumers.get(matmul.output[0], [None])[0]
    if add is None or add.op_type != "Add":
        return False
    if not (
        only_feeds(centring, scaling) and only_feeds(scaling, matmul) and only_feeds(matmul, add)
    ):
        return False
    bias_at = 1 if add.input[0] == matmul.output[0] else 0
    scale, mean, bias = (
        constant(scaling.input[1]),
        constant(centring.input[1]),
        constant(add.input[bias_at]),
    )
    n, k = weights.shape
    if scale is None or mean is None or bias is None:
        return False
    if scale.size not in (1, n) or mean.size not in (1, n) or bias.size != k:
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = 1.0 / scale if scaling.op_type == "Div" else scale
        shifted = np.broadcast_to(mean * factor, (n,)).ravel()  # the mean, scaled
    if not np.isfinite(shifted).all() or np.abs(shifted).max() > MAX_FOLDED_SHIFT:
        return False
    folded_bias = f"{add.input[bias_at]}_folded"
    graph.initializer.append(
        numpy_helper.from_array(bias.reshape(k) - shifted @ weights, folded_bias)
    )
    gemm = helper.make_node(
        "Gemm",
        [matmul.input[0], matmul.input[1], folded_bias],
        [add.output[0]],
        name=f"{matmul.name}_gemm",
    )
    scaling.input[0] = centring.input[0]
    graph.node.insert(list(graph.node).index(matmul), gemm)
    for node in (centring, matmul, add):
        graph.node.remove(node)
    return True
