"""The service's model-signal lines become the stack's CloudWatch metrics, with the values of the
rows sent, totalled over both workers and written once.

The real service (``entrypoint.sh serve``, 2 workers, a round every second) gets requests over
fresh connections, so both workers serve some. Every request carries the same mix of rows (one
row of each class, one with ``sepal_width`` missing, two with ``petal_length`` above the training
range), so every round's ratios and shares equal those of all the rows sent, wherever a round
boundary falls. Each line of the process's stdout goes through the stack's own metric filters
(``infra.signals.filter_specs``, applied with CloudWatch's JSON pattern syntax in
``tests/infra/patterns.py``), as the SageMaker event (the line) and as the EKS one (Fluent Bit's
record with the line's fields under ``log_processed``).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from core.bundle import read_manifest
from core.drift import ReferenceBins
from core.manifest import Manifest
from core.model import load_model
from infra.signals import filter_specs
from tests.contract.conftest import sagemaker_model_dir, start_server_own_stdout, stop_server
from tests.infra.patterns import metric_datum
from tests.monitoring.direct import direct_psi_all, direct_quality
from tests.monitoring.prometheus import predictions_per_worker

pytestmark = pytest.mark.slow

VERSION = "test-iris-nullable-0"
MISSING = "sepal_width"
OUTSIDE = "petal_length"
REQUESTS = 40  # at least 240 rows: enough for a PSI (100 rows)
MAX_REQUESTS = 400

Datum = tuple[str, float, tuple[tuple[str, str], ...]]


def _candidates(manifest: Manifest, model: Any) -> dict[tuple[str, int], list[np.ndarray]]:
    """Rows by (kind, predicted class): iris rows jittered, every value inside the training
    range; ``missing`` with sepal_width removed, ``outside`` with petal_length above the range."""
    rng = np.random.default_rng(1)
    base = np.asarray(load_iris().data, dtype=np.float64)
    rows = np.concatenate([base * rng.normal(1.0, 0.01, base.shape) for _ in range(20)])
    low = np.array([f.min for f in manifest.features], dtype=np.float64)
    high = np.array([f.max for f in manifest.features], dtype=np.float64)
    clean = rows[((rows > low) & (rows < high)).all(axis=1)]
    names = manifest.feature_names
    missing = clean.copy()
    missing[:, names.index(MISSING)] = np.nan
    outside = clean.copy()
    outside[:, names.index(OUTSIDE)] = high[names.index(OUTSIDE)] * 1.5
    pools: dict[tuple[str, int], list[np.ndarray]] = defaultdict(list)
    for kind, X in (("clean", clean), ("missing", missing), ("outside", outside)):
        for row, label in zip(X, model.predict(X).labels.tolist(), strict=True):
            pools[(kind, int(label))].append(row)
    return pools


def _request_rows(pools: dict[tuple[str, int], list[np.ndarray]], i: int) -> np.ndarray:
    """The i-th request: one clean row per class, one missing, two out of range (6 rows)."""

    def most(kind: str) -> int:
        return max((k for k in pools if k[0] == kind), key=lambda k: len(pools[k]))[1]

    picks = [("clean", c) for c in (0, 1, 2)]
    picks += [
        ("missing", most("missing")),
        ("outside", most("outside")),
        ("outside", most("outside")),
    ]
    rows = []
    for n, key in enumerate(picks):
        pool = pools[key]
        rows.append(pool[(i * len(picks) + n) % len(pool)])
    return np.array(rows)


def _both_served(metrics_dir: Path) -> bool:
    per_worker = predictions_per_worker(metrics_dir)
    return len(per_worker) == 2 and all(v > 0 for v in per_worker.values())


def _rounds(stdout: Path) -> int:
    """Rounds written so far (a round's lines share their ``ts``)."""
    return len(set(re.findall(r'"ts":"([^"]+)"', stdout.read_text())))


def _post(url: str, rows: np.ndarray) -> list[int]:
    body = json.dumps(
        {"instances": [[None if np.isnan(v) else float(v) for v in row] for row in rows]}
    ).encode()
    # A fresh connection per request (urllib closes it): the kernel hands each to a worker.
    request = urllib.request.Request(
        f"{url}/invocations",
        data=body,
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200
        return [int(p) for p in json.loads(r.read())["predictions"]]


def _published(target: str, message: str) -> list[Datum]:
    """What the stack's metric filters for ``target`` publish for one log event."""
    out = []
    for spec in filter_specs(target):
        datum = metric_datum(spec.pattern, spec.value, spec.dimensions, message)
        if datum is not None:
            out.append((spec.metric, datum[0], tuple(sorted(datum[1].items()))))
    return sorted(out)


def _eks_event(line: str) -> str:
    """Container Insights' Fluent Bit record of one container line (Merge_Log On)."""
    return json.dumps(
        {
            "time": "2026-11-30T14:00:00.000Z",
            "stream": "stdout",
            "log": line,
            "log_processed": json.loads(line),
            "kubernetes": {"namespace_name": "mlship", "pod_name": "mlship-abc"},
        }
    )


def test_signal_lines_become_the_stacks_metrics_with_the_values_of_the_rows_sent(
    nullable_iris_bundle: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(nullable_iris_bundle)
    pools = _candidates(manifest, load_model(nullable_iris_bundle))
    model_dir = sagemaker_model_dir(nullable_iris_bundle / "model.tar.gz", tmp_path / "sm")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stdout = tmp_path / "stdout.log"
    server = start_server_own_stdout(
        model_dir,
        tmp_path / "server.log",
        stdout,
        "--workers",
        "2",
        MLSHIP_METRICS_DIR=str(metrics_dir),
        MLSHIP_SIGNAL_INTERVAL_SECONDS="1",
    )
    sent: list[np.ndarray] = []
    labels: list[int] = []
    try:
        # Traffic until both workers have served and rounds were written while it flowed.
        for i in range(MAX_REQUESTS):
            rows = _request_rows(pools, i)
            labels += _post(server.url, rows)
            sent.append(rows)
            if i + 1 >= REQUESTS and _both_served(metrics_dir) and _rounds(stdout) >= 2:
                break
            time.sleep(0.02)
    finally:
        stop_server(server)  # SIGTERM: worker 1 writes the last interval after the drain
    assert server.proc.returncode == 0, server.logs()
    assert _both_served(metrics_dir), predictions_per_worker(metrics_dir)
    assert _rounds(stdout) >= 2, stdout.read_text()

    X = np.concatenate(sent)
    n = X.shape[0]
    lines = stdout.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # stdout carries the signal lines and nothing else.
    assert records and all(r["event"] == "mlship.signal" for r in records), lines[:5]

    # One writer for both workers: worker 1 (the first pid the supervisor reports).
    logs = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    (listening,) = [r for r in logs if r.get("message") == "workers listening"]
    assert {r["pid"] for r in records} == {listening["workers"][0]}

    # The rounds covered every row and every prediction of both workers, each once.
    written = [r for r in logs if r.get("message") == "model signals written"]
    assert {r["pid"] for r in written} == {listening["workers"][0]}
    assert sum(r["rows"] for r in written) == n
    assert sum(r["predictions"] for r in written) == n

    # Every line is published by the stack's filters: once across features, once by its
    # dimensions, the same for the SageMaker event and the EKS one.
    rounds: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = defaultdict(dict)
    for line, record in zip(lines, records, strict=True):
        published = _published("sagemaker", line)
        assert published == _published("eks", _eks_event(line)), line
        (everywhere, by_dimension) = sorted(published, key=lambda d: len(d[2]))
        assert everywhere[2] == () and everywhere[:2] == by_dimension[:2], published
        metric, value, dims = by_dimension
        assert value == record["value"]
        assert (metric, dims) not in rounds[record["ts"]], f"{line} twice in one round"
        rounds[record["ts"]][(metric, dims)] = value
    assert len(rounds) == len(written)

    # What the rows sent say, computed directly.
    missing, outside = direct_quality(X, manifest)
    counted = Counter(labels)
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for name in manifest.feature_names:
        feature = (("Feature", name), ("ModelVersion", VERSION))
        expected[("MissingRatio", feature)] = missing[name] / n
        expected[("OutOfRangeRatio", feature)] = outside[name] / n
    for c in (0, 1, 2):
        expected[("ClassShare", (("Class", str(c)), ("ModelVersion", VERSION)))] = counted[c] / n
    assert expected[("MissingRatio", (("Feature", MISSING), ("ModelVersion", VERSION)))] == 1 / 6
    assert min(counted[c] for c in (0, 1, 2)) > 0  # several classes

    # Every round had traffic, so every round carries every ratio and share. A round holds
    # whole requests only when no snapshot falls while a worker counts one (a request's classes
    # are counted one after another: a round once held 37 of class 0 and 36 of class 1 in 217
    # predictions), so each round is checked through its counts: a ratio times the round's rows
    # (a share times its predictions, from the round's log record) is a whole number, and over
    # all rounds those add up to what the rows sent hold.
    totals: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for ts, record in zip(sorted(rounds), written, strict=True):
        figures = {k: v for k, v in rounds[ts].items() if k[0] != "FeaturePsi"}
        assert figures.keys() == expected.keys(), ts
        for key, value in figures.items():
            count = value * record["predictions" if key[0] == "ClassShare" else "rows"]
            assert count == pytest.approx(round(count), abs=1e-6), (ts, key)
            totals[key] += round(count)
    assert {key: totals[key] / n for key in expected} == pytest.approx(expected, abs=1e-12)

    # The PSI of the last round is over every row sent (the window holds them all): the
    # monitor's own definition (core/drift) and the direct one.
    last = rounds[max(rounds)]
    reference = ReferenceBins(manifest)
    psi = reference.psi(reference.profile(X).counts, n)
    direct = direct_psi_all(X, manifest)
    for j, name in enumerate(manifest.feature_names):
        value = last[("FeaturePsi", (("Feature", name), ("ModelVersion", VERSION)))]
        assert value == pytest.approx(psi[j], rel=1e-9)
        assert value == pytest.approx(direct[name], rel=1e-9)
    assert {k[0] for k in last} == {"FeaturePsi", "MissingRatio", "OutOfRangeRatio", "ClassShare"}
