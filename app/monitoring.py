"""Input drift and data quality of every predicted row, as totals over all worker processes.

Per request the monitor only copies the rows into its worker's state (a few microseconds); they
are counted with :meth:`core.drift.ReferenceBins.profile` (one vectorised pass) once
``FLUSH_ROWS`` rows are pending. With several workers (``MLSHIP_METRICS_DIR`` set) that state is
a file per worker in the metrics directory, shared by memory mapping: the worker that answers a
``/metrics`` scrape reads every worker's file under a shared file lock, counted rows and
pending rows alike, so every figure is the total over all workers at every scrape, whichever
worker answers it.

- Counters (rows, missing and out-of-range values per feature) add up every worker of this run,
  dead ones included: a counter must never go down.
- The PSI per feature is computed at scrape from the merged histogram of the live workers'
  recent rows. Each worker's counts decay by halves once it holds more than its share of the
  window (``drift_window_rows / workers``), so the PSI follows recent traffic; a dead worker's
  histogram drops out (its rows are old by then).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.metrics import process_alive
from app.slices import RowSlices
from core.drift import Profile, ReferenceBins
from core.manifest import Manifest

# Rows pending before they are counted in one pass (a scrape counts pending rows as it reads).
FLUSH_ROWS = 256
# Rows a worker's state holds uncounted; a larger request is counted at once.
RING_ROWS = 1024
FILE_PREFIX = "drift_"
_FILE = re.compile(rf"^{FILE_PREFIX}(\d+)\.db$")

# State layout (float64): header, missing[n], out_of_range[n], counts[n * bins], ring[R * n].
_LAYOUT_TAG = 7.0e9 + 1  # marks a file of this layout (version 1); other files are skipped
_TAG, _FEATURES, _BINS, _CAPACITY, _PENDING, _ROWS, _WINDOW = range(7)
_HEADER = 7


@dataclass(frozen=True)
class Totals:
    """The monitor's figures summed over workers, as of one scrape."""

    rows: float
    missing: np.ndarray
    out_of_range: np.ndarray
    window_counts: np.ndarray
    window_rows: float


class DriftMonitor(Collector):
    """Histograms of served inputs on the manifest's reference bins, plus quality counts.

    Args:
        manifest: The served bundle's manifest.
        window_rows: Rows the PSI histograms remember, over all workers.
        directory: The metrics directory shared by the workers, or None for one process
            (the state then lives in memory).
        workers: Worker processes sharing ``directory`` (each remembers its share).
        worker: This worker's id in file names (its pid; tests simulate several).
        slices: Where a large batch is counted in row slices (``app/slices.py``).
    """

    def __init__(
        self,
        manifest: Manifest,
        window_rows: int,
        directory: Path | None = None,
        workers: int = 1,
        worker: int | None = None,
        slices: RowSlices | None = None,
    ) -> None:
        self.reference = ReferenceBins(manifest)
        self.slices = slices or RowSlices()
        self.names = self.reference.names
        self.window = max(window_rows / max(workers, 1), float(FLUSH_ROWS))
        self.directory = directory
        self.worker = os.getpid() if worker is None else worker
        n, bins = self.reference.n_features, self.reference.bins
        self._layout = (float(n), float(bins), float(RING_ROWS))
        self._size = _HEADER + 2 * n + n * bins + RING_ROWS * n
        self._lock = threading.Lock()  # this process's threads; the file lock is per process
        # One reader of the other workers' files at a time (a scrape, the signal writer's
        # thread): closing a descriptor drops this process's lock on that file for all threads.
        self._reading = threading.Lock()
        self._fd: int | None = None
        self._mmap: mmap.mmap | None = None
        if directory is None:
            state = np.zeros(self._size)
            self._init_header(state)
        else:
            state = self._open_file(directory / f"{FILE_PREFIX}{self.worker}.db")
        self._state = state
        self._header, self._missing, self._outside, self._counts, self._ring = self._views(state)

    # -- this worker ------------------------------------------------------------------------

    def _open_file(self, path: Path) -> np.ndarray:
        """Map this worker's file, keeping its counts if it already holds this layout (a
        worker restarted with a recycled pid continues the dead one's counters)."""
        nbytes = self._size * 8
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            fresh = os.fstat(fd).st_size != nbytes
            if fresh:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, nbytes)
            # From this fd, never from the path: closing any other descriptor of the file
            # would drop this process's lock on it.
            self._mmap = mmap.mmap(fd, nbytes)
            state = np.frombuffer(self._mmap, dtype=np.float64)
            if fresh or not self._valid(state):
                state[:] = 0.0
                self._init_header(state)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        self._fd = fd
        return state

    def _init_header(self, state: np.ndarray) -> None:
        state[_FEATURES], state[_BINS], state[_CAPACITY] = self._layout
        state[_TAG] = _LAYOUT_TAG

    def _valid(self, state: np.ndarray) -> bool:
        return (
            state.size == self._size
            and state[_TAG] == _LAYOUT_TAG
            and (state[_FEATURES], state[_BINS], state[_CAPACITY]) == self._layout
        )

    def _views(
        self, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n, bins = self.reference.n_features, self.reference.bins
        a = _HEADER
        b = a + n
        c = b + n
        d = c + n * bins
        return (
            state[:_HEADER],
            state[a:b],
            state[b:c],
            state[c:d].reshape(n, bins),
            state[d:].reshape(RING_ROWS, n),
        )

    def _acquire(self) -> None:
        self._lock.acquire()
        if self._fd is not None:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def observe(self, X: np.ndarray) -> None:
        """Record a validated batch (NaN allowed for nullable features). A batch larger than
        the ring is counted at once, before the lock is taken (in row slices on the
        worker's threads, summed)."""
        rows = X.shape[0]
        counted = self._profile(X) if rows > RING_ROWS else None
        self._acquire()
        try:
            pending = int(self._header[_PENDING])
            if counted is not None or pending + rows > RING_ROWS:
                self._flush(pending)
                pending = 0
            if counted is not None:
                self._add(counted)
                return
            self._ring[pending : pending + rows] = X
            pending += rows
            self._header[_PENDING] = pending
            if pending >= FLUSH_ROWS:
                self._flush(pending)
        finally:
            self._release()

    def _profile(self, X: np.ndarray) -> Profile:
        parts = self.slices.map(self.reference.profile, self.slices.rows(X))
        return sum(parts[1:], parts[0])

    def _flush(self, pending: int) -> None:
        if pending:
            self._add(self.reference.profile(self._ring[:pending]))
        self._header[_PENDING] = 0

    def _add(self, p: Profile) -> None:
        self._missing += p.missing
        self._outside += p.out_of_range
        self._counts += p.counts
        self._header[_ROWS] += p.rows
        self._header[_WINDOW] += p.rows
        if self._header[_WINDOW] > self.window:
            self._counts *= 0.5
            self._header[_WINDOW] *= 0.5

    def close(self) -> None:
        """Unmap and close this worker's file (it stays: its counters are part of the totals)."""
        if self._fd is None:
            return
        self._state = self._header = self._missing = self._outside = np.zeros(0)
        self._counts = self._ring = np.zeros((0, 0))
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        os.close(self._fd)
        self._fd = None

    # -- every worker -----------------------------------------------------------------------

    def totals(self) -> Totals:
        """Counts and recent histograms summed over every worker's state, pending rows
        included."""
        with self._lock:
            states = [(True, self._state.copy())]
        if self.directory is not None:
            with self._reading:
                for path in sorted(self.directory.glob(f"{FILE_PREFIX}*.db")):
                    match = _FILE.match(path.name)
                    if match is None or int(match.group(1)) == self.worker:
                        continue
                    state = self._read(path)
                    if state is not None:
                        states.append((process_alive(int(match.group(1))), state))
        n, bins = self.reference.n_features, self.reference.bins
        rows = 0.0
        window_rows = 0.0
        missing = np.zeros(n)
        outside = np.zeros(n)
        counts = np.zeros((n, bins))
        for alive, state in states:
            header, m, o, c, ring = self._views(state)
            pending = self.reference.profile(ring[: int(header[_PENDING])])
            rows += header[_ROWS] + pending.rows
            missing += m + pending.missing
            outside += o + pending.out_of_range
            if alive:
                counts += c + pending.counts
                window_rows += header[_WINDOW] + pending.rows
        return Totals(float(rows), missing, outside, counts, float(window_rows))

    def _read(self, path: Path) -> np.ndarray | None:
        """Another worker's state, read whole under a shared lock (None when unusable)."""
        try:
            with path.open("rb") as f:
                fcntl.lockf(f, fcntl.LOCK_SH)
                try:
                    data = f.read()
                finally:
                    fcntl.lockf(f, fcntl.LOCK_UN)
        except OSError:
            return None  # removed meanwhile
        if len(data) != self._size * 8:
            return None
        state = np.frombuffer(data, dtype=np.float64)
        return state if self._valid(state) else None

    def psi(self) -> np.ndarray:
        """PSI per feature of the merged recent histograms (NaN where there is none yet)."""
        t = self.totals()
        return self.reference.psi(t.window_counts, t.window_rows)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        t = self.totals()
        psi = GaugeMetricFamily(
            "mlship_feature_drift_psi",
            "Population Stability Index of recent inputs vs the training data, per feature "
            "(0.1 moderate, 0.25 significant drift), over all workers.",
            labels=["feature"],
        )
        values = self.reference.psi(t.window_counts, t.window_rows)
        for name, value in zip(self.names, values.tolist(), strict=True):
            psi.add_metric([name], value)
        yield psi
        yield CounterMetricFamily(
            "mlship_drift_rows", "Rows observed by the drift monitor, all workers.", value=t.rows
        )
        missing = CounterMetricFamily(
            "mlship_input_missing_values",
            "Missing (null/NaN) input values accepted, per feature, all workers.",
            labels=["feature"],
        )
        outside = CounterMetricFamily(
            "mlship_input_out_of_range",
            "Input values outside the training data's [min, max], per feature, all workers.",
            labels=["feature"],
        )
        for name, m, o in zip(self.names, t.missing.tolist(), t.out_of_range.tolist(), strict=True):
            missing.add_metric([name], m)
            outside.add_metric([name], o)
        yield missing
        yield outside
