"""Direct computations the monitoring figures are checked against: numpy and scikit-learn
only, written from the definitions, sharing no code with the service or the report."""

from __future__ import annotations

import numpy as np

from core.manifest import Manifest

EPSILON = 1e-4  # the proportion floor of the PSI definition


def direct_psi(values: np.ndarray, edges: list[float], frequencies: list[float]) -> float:
    """PSI of one feature's values against a reference histogram.

    Values outside the reference range count in the outer bins (clipped into the range);
    missing values (NaN) are left out.
    """
    present = values[~np.isnan(values)]
    counts, _ = np.histogram(np.clip(present, edges[0], edges[-1]), bins=np.asarray(edges))
    actual = np.maximum(counts / counts.sum(), EPSILON)
    expected = np.maximum(np.asarray(frequencies), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def direct_psi_all(X: np.ndarray, manifest: Manifest) -> dict[str, float]:
    """PSI of every feature that has a reference histogram."""
    out = {}
    for j, name in enumerate(manifest.feature_names):
        ref = manifest.reference.get(name)
        if ref is not None:
            out[name] = direct_psi(X[:, j], ref.bin_edges, ref.frequencies)
    return out


def direct_quality(X: np.ndarray, manifest: Manifest) -> tuple[dict[str, int], dict[str, int]]:
    """Missing values and values outside the training [min, max], per feature."""
    missing, outside = {}, {}
    for j, f in enumerate(manifest.features):
        col = X[:, j]
        missing[f.name] = int(np.isnan(col).sum())
        low = -np.inf if f.min is None else f.min
        high = np.inf if f.max is None else f.max
        outside[f.name] = int(((col < low) | (col > high)).sum())
    return missing, outside
