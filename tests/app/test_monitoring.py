"""The drift monitor's figures are totals over every worker's rows, at any scrape, and equal a
direct computation on those rows (workers simulated by monitors sharing one directory)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app import monitoring
from app.monitoring import FLUSH_ROWS, RING_ROWS, DriftMonitor
from app.slices import RowSlices
from core.bundle import read_manifest
from core.manifest import Manifest
from tests.app.conftest import test_split
from tests.monitoring.direct import direct_psi_all, direct_quality


@pytest.fixture(scope="module")
def manifest(logistic_bundle: Path) -> Manifest:
    return read_manifest(logistic_bundle)


@pytest.fixture(scope="module")
def rows(logistic_bundle: Path) -> np.ndarray:
    X = test_split(logistic_bundle)
    # 3 x the test split, a little noise so rows differ: 429 rows
    noisy = np.concatenate([X, X * 1.01, X * 0.99])
    noisy[::7, 3] = 1e9  # mean_area far above the training range
    noisy[1::11, 0] = -5.0  # mean_radius below it
    return noisy


def _scrape(monitor: DriftMonitor) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(monitor)
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("feature", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _assert_totals(
    scraped: dict[tuple[str, str], float], X: np.ndarray, manifest: Manifest
) -> None:
    missing, outside = direct_quality(X, manifest)
    psi = direct_psi_all(X, manifest)
    assert scraped[("mlship_drift_rows_total", "")] == X.shape[0]
    for name in manifest.feature_names:
        assert scraped[("mlship_input_missing_values_total", name)] == missing[name]
        assert scraped[("mlship_input_out_of_range_total", name)] == outside[name]
        assert scraped[("mlship_feature_drift_psi", name)] == pytest.approx(psi[name], rel=1e-9)


@pytest.fixture
def all_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated worker ids are not real processes: count them as running."""
    monkeypatch.setattr(monitoring, "process_alive", lambda pid: True)


@pytest.mark.usefixtures("all_alive")
def test_monitor_every_worker_scrapes_the_totals_of_all_workers(
    tmp_path: Path, manifest: Manifest, rows: np.ndarray
) -> None:
    a = DriftMonitor(manifest, 10_000, directory=tmp_path, workers=2, worker=101)
    b = DriftMonitor(manifest, 10_000, directory=tmp_path, workers=2, worker=102)
    # Uneven shares, single rows and batches, some counted, some still pending in each.
    a.observe(rows[:1])
    b.observe(rows[1:300])  # past FLUSH_ROWS: counted
    a.observe(rows[300:310])
    for i in range(310, 400):
        b.observe(rows[i : i + 1])  # pending
    a.observe(rows[400:])

    assert 0 < int(b._header[monitoring._PENDING]) < FLUSH_ROWS
    for answering in (a, b):
        _assert_totals(_scrape(answering), rows, manifest)


@pytest.mark.usefixtures("all_alive")
def test_monitor_requests_larger_than_the_pending_room_are_counted_exactly(
    tmp_path: Path, manifest: Manifest, rows: np.ndarray
) -> None:
    big = np.concatenate([rows] * 3)  # 1287 rows > RING_ROWS
    assert big.shape[0] > RING_ROWS
    a = DriftMonitor(manifest, 100_000, directory=tmp_path, workers=2, worker=201)
    b = DriftMonitor(manifest, 100_000, directory=tmp_path, workers=2, worker=202)

    a.observe(big[:200])  # pending
    a.observe(big[200:1100])  # does not fit beside the pending rows: both counted
    b.observe(big[1100:])

    _assert_totals(_scrape(b), big, manifest)


def test_monitor_a_dead_worker_keeps_its_counts_but_leaves_the_psi_window(
    tmp_path: Path, manifest: Manifest, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitoring, "process_alive", lambda pid: pid != 302)
    live = DriftMonitor(manifest, 10_000, directory=tmp_path, workers=2, worker=301)
    dead = DriftMonitor(manifest, 10_000, directory=tmp_path, workers=2, worker=302)
    live.observe(rows[:200])
    dead.observe(rows[200:])
    dead.close()  # its file stays, as after a crash

    scraped = _scrape(live)

    _, outside = direct_quality(rows, manifest)
    assert scraped[("mlship_drift_rows_total", "")] == rows.shape[0]
    assert scraped[("mlship_input_out_of_range_total", "mean_area")] == outside["mean_area"]
    psi = direct_psi_all(rows[:200], manifest)  # the live worker's rows only
    assert scraped[("mlship_feature_drift_psi", "mean_area")] == pytest.approx(psi["mean_area"])


def test_monitor_a_restarted_worker_with_a_recycled_pid_continues_the_counts(
    tmp_path: Path, manifest: Manifest, rows: np.ndarray
) -> None:
    first = DriftMonitor(manifest, 10_000, directory=tmp_path, worker=401)
    first.observe(rows[:100])
    first.close()

    again = DriftMonitor(manifest, 10_000, directory=tmp_path, worker=401)
    again.observe(rows[100:])

    assert _scrape(again)[("mlship_drift_rows_total", "")] == rows.shape[0]


def test_monitor_skips_files_it_cannot_read_as_its_own_layout(
    tmp_path: Path, manifest: Manifest, rows: np.ndarray
) -> None:
    (tmp_path / "drift_999.db").write_bytes(b"\0" * 4096)  # another layout, say a stale one
    (tmp_path / "drift_notapid.db").write_bytes(b"x")
    monitor = DriftMonitor(manifest, 10_000, directory=tmp_path, worker=501)
    monitor.observe(rows)

    _assert_totals(_scrape(monitor), rows, manifest)


def test_monitor_psi_follows_recent_rows_once_the_window_is_full(
    manifest: Manifest, rows: np.ndarray
) -> None:
    monitor = DriftMonitor(manifest, window_rows=1000)
    for _ in range(5):
        monitor.observe(rows)  # training-like
    before = monitor.psi()[3]
    for _ in range(10):
        monitor.observe(rows * 1.5)  # shifted

    totals = monitor.totals()
    assert totals.rows == 15 * rows.shape[0]  # counters never decay
    assert totals.window_rows <= 1000 + FLUSH_ROWS
    assert before < 0.25 < monitor.psi()[3]


def test_monitor_psi_is_nan_below_the_minimum_rows(manifest: Manifest, rows: np.ndarray) -> None:
    monitor = DriftMonitor(manifest, 10_000)
    monitor.observe(rows[:50])

    assert all(math.isnan(v) for v in monitor.psi())
    assert monitor.totals().rows == 50


def test_a_large_batch_counted_in_row_slices_gives_the_direct_totals(
    manifest: Manifest, rows: np.ndarray
) -> None:
    """A batch larger than the ring is counted at once, in row slices on several threads when
    the worker has them (app/slices.py): the figures equal the direct computation, and rows
    already pending are counted with it."""
    big = np.concatenate([rows] * 100)  # 42,900 rows: 2 slices of at least SLICE_ROWS
    slices = RowSlices(2)
    try:
        assert len(slices.sizes(big.shape[0])) == 2
        monitor = DriftMonitor(manifest, 10**6, slices=slices)
        monitor.observe(rows[:5])  # pending in the ring
        monitor.observe(big)
        _assert_totals(_scrape(monitor), np.concatenate([rows[:5], big]), manifest)
    finally:
        slices.close()
