"""Large batches are counted a column at a time, small ones by one broadcast comparison: both
give the same counts, missing and out-of-range figures, edges and NaN included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core.drift
from core.bundle import read_manifest
from core.drift import ReferenceBins


def test_drift_column_counts_bin_like_the_broadcast(
    logistic_bundle: Path, logistic_X: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    bins = ReferenceBins(read_manifest(logistic_bundle))
    rng = np.random.default_rng(4)
    X = logistic_X[rng.integers(0, len(logistic_X), 3000)] * rng.uniform(0.3, 1.7, (3000, 30))
    X[::41, 5] = np.nan
    edges = bins.inner[0][np.isfinite(bins.inner[0])]
    X[: edges.size, 0] = edges  # values exactly on a bin edge
    X[7, 2], X[8, 2], X[9, 2] = np.inf, -np.inf, np.nan  # infinities: the outer bins
    bins.tracked[4] = False  # a feature without a reference histogram counts no bins

    assert X.shape[0] >= core.drift._COLUMN_ROWS  # the column path runs first
    searched = [bins.profile(X), bins.profile(np.asfortranarray(X))]
    monkeypatch.setattr(core.drift, "_COLUMN_ROWS", 10**9)
    broadcast = bins.profile(X)

    for profile in searched:
        np.testing.assert_array_equal(profile.counts, broadcast.counts)
        np.testing.assert_array_equal(profile.missing, broadcast.missing)
        np.testing.assert_array_equal(profile.out_of_range, broadcast.out_of_range)
        assert profile.rows == broadcast.rows == 3000
    assert not broadcast.counts[4].any()
    tracked = np.isfinite(X) | np.isinf(X)
    tracked[:, 4] = False
    assert broadcast.counts.sum() == tracked.sum()
