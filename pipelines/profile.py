"""Profile the training matrix into the bundle's feature schema and drift reference.

What the service validates (kind, range, nullability per feature) and what the drift monitor
compares against (a histogram per feature) both come from the training rows, here.
"""

from __future__ import annotations

import numpy as np

from core.manifest import DriftReference, FeatureSpec


def describe_features(
    X: np.ndarray, names: list[str], bins: int = 10
) -> tuple[list[FeatureSpec], dict[str, DriftReference]]:
    """Feature schema and drift reference histograms of a numeric training matrix.

    Args:
        X: Training features, shape (rows, len(names)), NaN for missing values.
        names: Column names, in model input order.
        bins: Histogram bins per feature (quantile edges, so each bin holds about the same
            share of the training rows).

    Returns:
        The feature specs and, per feature, bin edges and relative frequencies.
    """
    X = np.asarray(X, dtype=np.float64)
    features: list[FeatureSpec] = []
    reference: dict[str, DriftReference] = {}
    for j, name in enumerate(names):
        col = X[:, j]
        present = col[~np.isnan(col)]
        is_int = present.size > 0 and bool(np.all(present == np.round(present)))
        is_bool = is_int and set(np.unique(present).tolist()) <= {0.0, 1.0}
        dtype = "bool" if is_bool else "int64" if is_int else "float64"
        features.append(
            FeatureSpec(
                name=name,
                dtype=dtype,
                min=float(present.min()) if present.size else None,
                max=float(present.max()) if present.size else None,
                nullable=bool(present.size < col.size),
            )
        )
        if present.size:
            edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
            if edges.size < 2:
                edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
            counts, _ = np.histogram(present, bins=edges)
            reference[name] = DriftReference(
                bin_edges=edges.tolist(), frequencies=(counts / counts.sum()).tolist()
            )
    return features, reference
