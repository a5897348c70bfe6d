"""What "the same prediction" means across predict paths.

Class labels must be identical. Probabilities and regression values may differ in the last
bits only: BLAS sums a matrix product in a different order for a different number of rows,
so a row predicted in a batch of 64 and alone can differ by one ulp (about 1e-16 relative).
onnxruntime sums tree votes in float32: the ONNX paths are held to the export's parity
tolerance (``pipelines.onnx_export.DEFAULT_ATOL``), labels still identical.
"""

from __future__ import annotations

import numpy as np

from core.model import Prediction

RTOL = 1e-12
ATOL = 1e-15


def assert_same_prediction(
    actual: Prediction, expected: Prediction, atol: float = ATOL, rtol: float = RTOL
) -> None:
    """Identical labels; values within the tolerance."""
    assert len(actual) == len(expected)
    if np.issubdtype(expected.labels.dtype, np.floating):
        np.testing.assert_allclose(actual.labels, expected.labels, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(actual.labels, expected.labels)
    if expected.probabilities is None:
        assert actual.probabilities is None
    else:
        assert actual.probabilities is not None
        np.testing.assert_allclose(
            actual.probabilities, expected.probabilities, rtol=rtol, atol=atol
        )
