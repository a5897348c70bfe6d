"""Large batches are binned by binary search, small ones by one broadcast comparison: both
give the same counts, missing and out-of-range figures, edges and NaN included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core.drift
from core.bundle import read_manifest
from core.drift import ReferenceBins


def test_drift_binary_search_bins_like_the_broadcast(
    logistic_bundle: Path, logistic_X: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    bins = ReferenceBins(read_manifest(logistic_bundle))
    rng = np.random.default_rng(4)
    X = logistic_X[rng.integers(0, len(logistic_X), 3000)] * rng.uniform(0.3, 1.7, (3000, 30))
    X[::41, 5] = np.nan
    edges = bins.inner[0][np.isfinite(bins.inner[0])]
    X[: edges.size, 0] = edges  # values exactly on a bin edge

    searched = bins.profile(X)
    monkeypatch.setattr(core.drift, "_SEARCH_ROWS", 10**9)
    broadcast = bins.profile(X)

    assert X.shape[0] >= 256  # the binary-search path ran first
    np.testing.assert_array_equal(searched.counts, broadcast.counts)
    np.testing.assert_array_equal(searched.missing, broadcast.missing)
    np.testing.assert_array_equal(searched.out_of_range, broadcast.out_of_range)
    assert searched.counts.sum() == np.isfinite(X).sum()
