"""Input drift against a bundle's reference histograms: the bins and the PSI, defined once.

The service's monitor (``app/monitoring.py``: rows as they are predicted, summed over worker
processes) and the monitoring report (``pipelines/monitoring``: rows read back from capture
files) both count rows with :meth:`ReferenceBins.profile` and score the counts with
:meth:`ReferenceBins.psi`, so a figure on a dashboard and the same figure in a report agree.

A value's bin is the number of inner reference edges at or below it, so values outside the
training range count in the first or the last bin (as clipping them into the range and calling
``np.histogram`` with the reference edges would). Missing values (NaN) are counted apart and
never binned. Out of range means outside the training data's ``[min, max]`` of the feature.

Features are tracked when the manifest's ``reference`` has a histogram (``bin_edges`` and
``frequencies``, one more edge than frequencies) for them. A categorical feature's reference is
a histogram over its codes with one unit bin per known category and a last one for 'other'
(``pipelines/profile.py``), so its PSI compares category shares, and a value outside the known
categories (code k, beyond the training max k-1 when there is no 'other' bucket) also counts as
out of range. Any other feature, or a reference entry without such a histogram, has no PSI
(NaN) but still counts its missing and out-of-range values.

numpy only: the serving image imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.manifest import Manifest

# Empty bins would make the PSI infinite; this is the usual floor for proportions.
PSI_EPSILON = 1e-4
# Below this many rows a PSI is noise (a handful of rows always look drifted): NaN instead.
MIN_ROWS_FOR_PSI = 100
# Population Stability Index levels commonly read as moderate and significant drift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


# Batches from this many rows are counted a column at a time (see ReferenceBins.profile).
_COLUMN_ROWS = 512  # the crossover here: 256 rows 0.23 vs 0.40 ms, 1024 rows 0.86 vs 0.47 ms


@dataclass(frozen=True)
class Profile:
    """What a batch of rows adds to the monitor's counts.

    Attributes:
        rows: Rows in the batch.
        counts: Shape (features, bins): non-missing values per reference bin (zeros for
            features that are not tracked and for the padding bins of narrower histograms).
        missing: Shape (features,): missing (NaN) values.
        out_of_range: Shape (features,): values outside the training ``[min, max]``.
    """

    rows: int
    counts: np.ndarray
    missing: np.ndarray
    out_of_range: np.ndarray

    def __add__(self, other: Profile) -> Profile:
        """The profile of both batches together."""
        return Profile(
            self.rows + other.rows,
            self.counts + other.counts,
            self.missing + other.missing,
            self.out_of_range + other.out_of_range,
        )


class ReferenceBins:
    """The reference histograms of a manifest, as arrays ready for vectorised counting.

    Args:
        manifest: The bundle's manifest (features in model input order, ``reference``).
    """

    def __init__(self, manifest: Manifest) -> None:
        self.names = manifest.feature_names
        n = len(self.names)
        edges: list[np.ndarray | None] = []
        freqs: list[np.ndarray | None] = []
        for name in self.names:
            ref = manifest.reference.get(name)
            bin_edges = getattr(ref, "bin_edges", None)
            frequencies = getattr(ref, "frequencies", None)
            if bin_edges is None or frequencies is None or len(bin_edges) != len(frequencies) + 1:
                edges.append(None)  # no histogram reference: not tracked
                freqs.append(None)
                continue
            edges.append(np.asarray(bin_edges, dtype=np.float64))
            freqs.append(np.asarray(frequencies, dtype=np.float64))
        self.tracked = np.array([e is not None for e in edges], dtype=bool)
        self.widths = np.array([1 if f is None else f.size for f in freqs], dtype=np.int64)
        self.bins = int(self.widths.max()) if n else 1
        # Inner edges padded with +inf (a value is never >= +inf, so pads add nothing).
        self.inner = np.full((n, max(self.bins - 1, 1)), np.inf)
        self.expected = np.zeros((n, self.bins))
        self.edges: list[np.ndarray | None] = edges
        for j, (e, f) in enumerate(zip(edges, freqs, strict=True)):
            if e is None or f is None:
                continue
            self.inner[j, : e.size - 2] = e[1:-1]
            self.expected[j, : f.size] = f
        lows = [f.min if f.min is not None else -np.inf for f in manifest.features]
        highs = [f.max if f.max is not None else np.inf for f in manifest.features]
        self.low = np.asarray(lows, dtype=np.float64)
        self.high = np.asarray(highs, dtype=np.float64)
        self._offsets = np.arange(n) * self.bins
        self._in_width = np.arange(self.bins)[None, :] < self.widths[:, None]

    @property
    def n_features(self) -> int:
        return len(self.names)

    def profile(self, X: np.ndarray) -> Profile:
        """Count a (rows, features) float64 matrix (NaN for missing) in one vectorised pass:
        one broadcast comparison for small batches, a column at a time for large ones (where the
        rows x features x bins comparison would cost tens of milliseconds on a 6 MB
        mini-batch). Both give the same counts (tested)."""
        n = self.n_features
        if X.shape[0] == 0:
            return Profile(0, np.zeros((n, self.bins)), np.zeros(n), np.zeros(n))
        if X.shape[0] >= _COLUMN_ROWS:
            return self._profile_by_column(X)
        nan = np.isnan(X)
        idx = (X[:, :, None] >= self.inner[None, :, :]).sum(axis=2)
        idx = np.minimum(idx, self.widths - 1) + self._offsets
        valid = ~nan & self.tracked
        counts = np.bincount(idx[valid], minlength=n * self.bins).reshape(n, self.bins)
        outside = ((self.low > X) | (self.high < X)).sum(axis=0)
        return Profile(
            rows=int(X.shape[0]),
            counts=counts.astype(np.float64),
            missing=nan.sum(axis=0).astype(np.float64),
            out_of_range=outside.astype(np.float64),
        )

    def _profile_by_column(self, X: np.ndarray) -> Profile:
        """:meth:`profile` one contiguous column at a time. A value's bin is the number of
        inner edges <= it, so counting the values >= each edge (one vectorised comparison per
        edge; NaN compares false) gives every bin's count as a difference: no per-value bin
        index, no sort."""
        n = self.n_features
        rows = X.shape[0]
        X = np.asfortranarray(X)
        counts = np.zeros((n, self.bins))
        missing = np.zeros(n)
        outside = np.zeros(n)
        for j in range(n):
            column = X[:, j]
            nan = np.count_nonzero(np.isnan(column))
            missing[j] = nan
            outside[j] = np.count_nonzero((column < self.low[j]) | (column > self.high[j]))
            if self.tracked[j]:
                width = int(self.widths[j])
                at_least = [np.count_nonzero(column >= e) for e in self.inner[j, : width - 1]]
                cumulative = np.array([rows - nan, *at_least, 0], dtype=np.float64)
                counts[j, :width] = cumulative[:-1] - cumulative[1:]
        return Profile(int(rows), counts, missing, outside)

    def psi(self, counts: np.ndarray, rows: float) -> np.ndarray:
        """Population Stability Index per feature of ``counts`` against the reference.

        Args:
            counts: Shape (features, bins), as in :attr:`Profile.counts` (sums of them, or
                decayed sums: only the proportions matter).
            rows: Rows behind ``counts``; below :data:`MIN_ROWS_FOR_PSI` every PSI is NaN.

        Returns:
            Shape (features,): sum over bins of (actual - expected) * ln(actual / expected),
            each proportion floored at :data:`PSI_EPSILON`; NaN for features that are not
            tracked or have no value yet.
        """
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            actual = np.maximum(counts / totals, PSI_EPSILON)
        expected = np.maximum(self.expected, PSI_EPSILON)
        terms = np.where(self._in_width, (actual - expected) * np.log(actual / expected), 0.0)
        out: np.ndarray = terms.sum(axis=1)
        out[(totals[:, 0] == 0) | ~self.tracked | (rows < MIN_ROWS_FOR_PSI)] = np.nan
        return out
