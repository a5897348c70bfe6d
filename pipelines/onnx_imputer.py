"""Run a converted graph's imputation with standard operators, so onnxruntime can run it.

skl2onnx converts ``SimpleImputer`` (which training puts before the scaler when a number
feature has gaps) into the ONNX-ML ``Imputer`` operator. onnxruntime implements that operator
for float32 and int64 inputs only, and the exported graphs take float64: every model trained
on a table with missing numbers failed its export ("Could not find an implementation for
Imputer(1)") and was served by scikit-learn.

``Imputer(x)`` with NaN as the replaced value is ``Where(IsNaN(x), values, x)``, the values
broadcast over the rows (one per column, or one for all), which onnxruntime runs in float64.
The values are the operator's own attribute, which ONNX stores as float32: a median or mean
moves by at most one float32 rounding (about 6e-8 of it), and the export's parity check on the
test split decides as for any graph.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IMPUTER = "Imputer"
ML_DOMAIN = "ai.onnx.ml"


def impute_with_where(onx: Any) -> bool:
    """Replace every ``Imputer`` of NaN in ``onx`` (a ``ModelProto``, changed in place) with
    ``IsNaN`` and ``Where``. Returns True when one was replaced; an imputer of another value
    (or of int64 values) is left as it is."""
    from onnx import helper, numpy_helper

    graph = onx.graph
    replaced = False
    for node in [n for n in graph.node if n.op_type == IMPUTER and n.domain == ML_DOMAIN]:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        values = attributes.get("imputed_value_floats")
        if not values or not math.isnan(attributes.get("replaced_value_float", math.nan)):
            continue
        name = node.output[0]
        fill = numpy_helper.from_array(np.asarray(values, dtype=np.float64), f"{name}_fill")
        graph.initializer.append(fill)
        missing = helper.make_node("IsNaN", [node.input[0]], [f"{name}_missing"])
        where = helper.make_node("Where", [missing.output[0], fill.name, node.input[0]], [name])
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, where)
        graph.node.insert(at, missing)
        replaced = True
    return replaced
