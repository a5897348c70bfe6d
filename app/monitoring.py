"""Input drift and data quality, measured on every predicted row against the training data.

Per request this only queues the rows; they are binned together (one vectorised comparison and
one ``bincount``) once about ``FLUSH_ROWS`` rows are queued, or when ``/metrics`` is scraped,
so single-row requests do not each pay the numpy call overhead. The Population Stability Index
per feature is computed when ``/metrics`` is scraped. Counts decay by halves once the window
fills, so the PSI follows recent traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from core.manifest import Manifest

# Empty bins would make the PSI infinite; this is the usual floor for proportions.
_PSI_EPSILON = 1e-4
# Below this many rows a PSI is noise (a handful of rows always look drifted): report NaN.
MIN_ROWS_FOR_PSI = 100
# Rows queued before they are binned in one pass (a scrape bins whatever is queued).
FLUSH_ROWS = 256


class DriftMonitor(Collector):
    """Histograms of served inputs on the manifest's reference bin edges, plus quality counts."""

    def __init__(self, manifest: Manifest, window_rows: int) -> None:
        self.names = manifest.feature_names
        self.window = window_rows
        n = len(self.names)
        # Reference bins per feature, padded to a common width; +inf pads never match.
        self.tracked = np.array([name in manifest.reference for name in self.names])
        widths = [
            len(manifest.reference[f].frequencies) if t else 1
            for f, t in zip(self.names, self.tracked, strict=True)
        ]
        self.bins = max(widths)
        inner = np.full((n, max(self.bins - 1, 1)), np.inf)
        self.expected = np.zeros((n, self.bins))
        for j, name in enumerate(self.names):
            ref = manifest.reference.get(name)
            if ref is None:
                continue
            edges = np.asarray(ref.bin_edges[1:-1], dtype=np.float64)
            inner[j, : edges.size] = edges
            self.expected[j, : len(ref.frequencies)] = ref.frequencies
        self._inner = inner
        self._width = np.array(widths)
        lows = [f.min if f.min is not None else -np.inf for f in manifest.features]
        highs = [f.max if f.max is not None else np.inf for f in manifest.features]
        self._low = np.asarray(lows, dtype=np.float64)
        self._high = np.asarray(highs, dtype=np.float64)
        self._offsets = np.arange(n) * self.bins
        self._lock = threading.Lock()
        self.counts = np.zeros((n, self.bins))
        self.rows_in_window = 0.0
        self.rows_total = 0
        self.missing = np.zeros(n, dtype=np.int64)
        self.out_of_range = np.zeros(n, dtype=np.int64)
        self._queued: list[np.ndarray] = []
        self._queued_rows = 0

    def observe(self, X: np.ndarray) -> None:
        """Record a validated batch (NaN allowed for nullable features)."""
        with self._lock:
            self._queued.append(X)
            self._queued_rows += X.shape[0]
            if self._queued_rows < FLUSH_ROWS:
                return
        self.flush()

    def flush(self) -> None:
        """Bin every queued row."""
        with self._lock:
            queued, self._queued, self._queued_rows = self._queued, [], 0
        if queued:
            self._bin(queued[0] if len(queued) == 1 else np.concatenate(queued))

    def _bin(self, X: np.ndarray) -> None:
        nan = np.isnan(X)
        # bin index = number of inner edges <= value (values outside the training range land
        # in the first or last bin, as np.histogram's closed outer bins would clip them).
        idx = (X[:, :, None] >= self._inner[None, :, :]).sum(axis=2)
        idx = np.minimum(idx, self._width - 1) + self._offsets
        valid = ~nan & self.tracked
        binned = np.bincount(idx[valid], minlength=self.counts.size).reshape(self.counts.shape)
        outside = ((self._low > X) | (self._high < X)).sum(axis=0)
        with self._lock:
            self.counts += binned
            self.rows_in_window += X.shape[0]
            self.rows_total += X.shape[0]
            self.missing += nan.sum(axis=0)
            self.out_of_range += outside
            if self.rows_in_window > self.window:
                self.counts *= 0.5
                self.rows_in_window *= 0.5

    def psi(self) -> np.ndarray:
        """PSI per feature (NaN for features without data or reference yet)."""
        self.flush()
        with self._lock:
            counts = self.counts.copy()
            rows_total = self.rows_total
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            actual = np.maximum(counts / totals, _PSI_EPSILON)
        expected = np.maximum(self.expected, _PSI_EPSILON)
        mask = np.arange(self.bins)[None, :] < self._width[:, None]
        terms = np.where(mask, (actual - expected) * np.log(actual / expected), 0.0)
        out: np.ndarray = terms.sum(axis=1)
        out[(totals[:, 0] == 0) | ~self.tracked | (rows_total < MIN_ROWS_FOR_PSI)] = np.nan
        return out

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        psi = GaugeMetricFamily(
            "mlship_feature_drift_psi",
            "Population Stability Index of recent inputs vs the training data, per feature "
            "(0.1 moderate, 0.25 significant drift).",
            labels=["feature"],
        )
        for name, value in zip(self.names, self.psi().tolist(), strict=True):
            psi.add_metric([name], value)
        yield psi
        rows = CounterMetricFamily(
            "mlship_drift_rows", "Rows observed by the drift monitor since start."
        )
        self.flush()
        rows.add_metric([], float(self.rows_total))
        yield rows
        missing = CounterMetricFamily(
            "mlship_input_missing_values",
            "Missing (null/NaN) input values accepted, per feature.",
            labels=["feature"],
        )
        outside = CounterMetricFamily(
            "mlship_input_out_of_range",
            "Input values outside the training data's [min, max], per feature.",
            labels=["feature"],
        )
        with self._lock:
            miss, oor = self.missing.tolist(), self.out_of_range.tolist()
        for name, m, o in zip(self.names, miss, oor, strict=True):
            missing.add_metric([name], float(m))
            outside.add_metric([name], float(o))
        yield missing
        yield outside

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)
