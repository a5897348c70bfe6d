"""The model-signal lines: the service's monitoring figures, written to stdout every interval for
the stack's CloudWatch metric filters (the line contract: ``core/signals.py``).

Every ``MLSHIP_SIGNAL_INTERVAL_SECONDS`` (60 at most) one round of lines, one per figure. What
each figure covers ("recent"):

- ``feature_psi``: the PSI of the drift monitor's window, as ``/metrics`` shows it: the last
  ``MLSHIP_DRIFT_WINDOW_ROWS`` rows of every worker, older ones decaying by halves
  (``app/monitoring.py``). Only for features that have one (a reference histogram and at least
  100 rows in the window).
- ``missing_ratio``, ``out_of_range_ratio``: per feature, the missing or out-of-range values over
  the rows predicted since the previous round (the monitor's counters, as deltas).
- ``class_share`` (classifiers): per class, the predictions of that class over the predictions
  since the previous round, per model version that answered them (``mlship_predictions``; with
  a challenger, ``mlship_model_predictions{mode="served"}``: shadow scores are not answers).

A round with no prediction since the previous one writes nothing: the stack's alarms see no
data, which they treat as not breaching (``treat_missing_data = "notBreaching"``), so an idle
service neither alarms nor keeps an old alarm up. The input figures (PSI and ratios) are of
every row served whichever model answered, measured against the champion's training data, so
they carry the champion's version; class shares carry the version that predicted them.
``model_version`` is the bundle's version (``manifest.version``), ``unversioned`` if blank.

Totals over all workers: the monitor merges every worker's state and the counters are summed
over the workers' files, so one process writes for all: worker 1 (``app/server.py``), or the
only one. A replaced worker 1 counts its first round from its own start. Each SageMaker
instance or EKS pod writes its own lines; the alarms take the Maximum.

Off the request path: the event loop only runs the timer; the figures are read and the lines
written in a thread, and a failure is logged and the next round tries again. At shutdown, after
the drain, the last (partial) interval is written if it had traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import orjson

from app.settings import AppSettings
from core.signals import (
    CLASS_SHARE,
    FEATURE_PSI,
    MISSING_RATIO,
    OUT_OF_RANGE_RATIO,
    signal_fields,
)

if TYPE_CHECKING:
    from app.service import Service

log = logging.getLogger("mlship.app")

UNVERSIONED = "unversioned"

Line = dict[str, str | float]


@dataclass(frozen=True)
class Snapshot:
    """The figures at one moment, summed over every worker.

    Attributes:
        rows: Rows predicted since the start (a counter).
        missing: Shape (features,): missing values since the start.
        out_of_range: Shape (features,): out-of-range values since the start.
        psi: Shape (features,): the PSI of the monitor's window now (NaN where there is none).
        predictions: Predicted rows since the start by (model version, class).
    """

    rows: float
    missing: np.ndarray
    out_of_range: np.ndarray
    psi: np.ndarray
    predictions: dict[tuple[str, str], float]


def interval_lines(
    before: Snapshot,
    now: Snapshot,
    features: Sequence[str],
    classes: Sequence[str],
    model_version: str,
) -> list[Line]:
    """The lines of the interval between two snapshots (see the module docstring).

    Args:
        features: Feature names in the monitor's order.
        classes: The model's classes as text (each version with predictions gets a share of
            every one, 0 included); empty for a regressor.
        model_version: The champion's version, carried by the input figures.
    """
    lines: list[Line] = []
    rows = now.rows - before.rows
    if rows > 0:
        missing = (now.missing - before.missing) / rows
        outside = (now.out_of_range - before.out_of_range) / rows
        for name, psi in zip(features, now.psi.tolist(), strict=True):
            if math.isfinite(psi):
                lines.append(signal_fields(FEATURE_PSI, max(psi, 0.0), name, model_version))
        for signal, ratios in ((MISSING_RATIO, missing), (OUT_OF_RANGE_RATIO, outside)):
            for name, ratio in zip(features, ratios.tolist(), strict=True):
                lines.append(signal_fields(signal, _share(ratio), name, model_version))
    if not classes:
        return lines
    delta: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(classes, 0.0))
    for (version, label), count in now.predictions.items():
        delta[version][label] = max(0.0, count - before.predictions.get((version, label), 0.0))
    for version in sorted(delta):
        total = sum(delta[version].values())
        if total <= 0:
            continue
        for label, count in delta[version].items():
            lines.append(signal_fields(CLASS_SHARE, _share(count / total), label, version))
    return lines


def _share(value: float) -> float:
    # A counter that went down (a worker's state restarted) must not make a share leave 0-1.
    return min(max(value, 0.0), 1.0)


def read_snapshot(service: Service) -> Snapshot:
    """The service's figures now, over every worker (the service's monitor must be on)."""
    monitor = service.monitor
    if monitor is None:
        raise RuntimeError("model signals need the drift monitor (MLSHIP_MONITORING)")
    totals = monitor.totals()
    psi = monitor.reference.psi(totals.window_counts, totals.window_rows)
    predictions: dict[tuple[str, str], float] = defaultdict(float)
    if service.model.is_classifier:
        metrics = service.metrics
        if service.rollout is None:
            version = model_version(service.model.version)
            for labels, value in metrics.counter_totals(metrics.predictions):
                predictions[(version, labels["class"])] += value
        else:
            for labels, value in metrics.counter_totals(service.rollout.metrics.predictions):
                if labels["mode"] == "served":
                    version = model_version(labels["model_version"])
                    predictions[(version, labels["class"])] += value
    return Snapshot(totals.rows, totals.missing, totals.out_of_range, psi, dict(predictions))


def model_version(version: str) -> str:
    """The ``model_version`` of the lines: the bundle's version, or ``unversioned``."""
    return version.strip() or UNVERSIONED


def write_stdout(data: bytes) -> None:
    """Write to file descriptor 1 unbuffered: a line shorter than the pipe buffer (4 KiB) is
    written whole, never interleaved with another process's output."""
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


class SignalWriter:
    """Writes a round of signal lines every interval, from the figures' change since the last.

    Args:
        read: Returns the figures now (:func:`read_snapshot`); read once here, as the baseline
            (if that fails, the first round that can read is the baseline).
        features: Feature names in the monitor's order.
        classes: The model's classes as text; empty for a regressor.
        model_version: The version the input figures carry.
        interval: Seconds between rounds.
        write: Writes one encoded line (stdout).
    """

    def __init__(
        self,
        read: Callable[[], Snapshot],
        features: Sequence[str],
        classes: Sequence[str],
        model_version: str,
        interval: float,
        write: Callable[[bytes], None] = write_stdout,
    ) -> None:
        self._read = read
        self.features = list(features)
        self.classes = list(classes)
        self.model_version = model_version
        self.interval = interval
        self._write = write
        self._lock = threading.Lock()  # one round at a time (the timer's and the last one)
        self._task: asyncio.Task[None] | None = None
        self._last: Snapshot | None = None
        self.write_round()  # the baseline: the first round counts from here

    def write_round(self) -> int:
        """Write the lines of the interval since the previous round; returns how many were
        written. Never raises: a failure is logged, and the next round covers its interval."""
        with self._lock:
            ts = datetime.now(UTC).isoformat(timespec="milliseconds")
            # Broad on purpose: this runs beside the requests, and nothing in it may end the
            # worker; the log carries the traceback.
            try:
                now = self._read()
                before = now if self._last is None else self._last
                lines = interval_lines(before, now, self.features, self.classes, self.model_version)
            except Exception:
                log.exception("model signals: cannot compute this round; the next one will")
                return 0
            self._last = now
            pid = os.getpid()
            written = 0
            try:
                for line in lines:
                    self._write(orjson.dumps({**line, "ts": ts, "pid": pid}) + b"\n")
                    written += 1
            except OSError as e:
                log.warning("model signals: cannot write to stdout (%s); lines lost", e)
            if lines:  # what the round covered, for whoever wonders how noisy a ratio is
                predictions = sum(now.predictions.values()) - sum(before.predictions.values())
                log.info(
                    "model signals written",
                    extra={
                        "lines": written,
                        "rows": round(now.rows - before.rows),
                        "predictions": round(predictions),
                    },
                )
            return written

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await asyncio.to_thread(self.write_round)
            due += self.interval
            if due <= loop.time():  # a stalled loop or a slow round: skip what was missed
                due = loop.time() + self.interval

    def start(self) -> None:
        """Start the timer in the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop the timer, then write the last interval (nothing if it had no traffic)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.write_round()


def build_signal_writer(settings: AppSettings, service: Service) -> SignalWriter | None:
    """The writer of ``service``'s signal lines, or None when they are off
    (``MLSHIP_SIGNALS=false`` or ``MLSHIP_MONITORING=false``)."""
    if not settings.signals or service.monitor is None:
        return None
    classes = [str(c) for c in service.model.classes or []] if service.model.is_classifier else []
    return SignalWriter(
        lambda: read_snapshot(service),
        service.monitor.names,
        classes,
        model_version(service.model.version),
        settings.signal_interval_seconds,
    )
