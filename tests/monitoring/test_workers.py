"""Every monitoring figure is the total over all workers at every scrape.

A real Prometheus (Debian's, 1 s scrape interval; it keeps its scrape connection alive, so one
worker answers all its scrapes) scrapes the real service started with 2 workers. Traffic goes
over fresh connections, so both workers serve some of it; then Prometheus' figures must equal
what was sent, computed directly from the rows, and the out-of-range alert rule of
``infra/prometheus/alerts.yml`` must be pending.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from core.bundle import read_manifest
from tests.contract.conftest import sagemaker_model_dir, start_server, stop_server
from tests.monitoring.conftest import NULLABLE_FEATURE
from tests.monitoring.direct import direct_psi_all, direct_quality
from tests.monitoring.prometheus import (
    api,
    predictions_per_worker,
    query,
    running_prometheus,
    scalar,
)

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "alerts.yml"

pytestmark = pytest.mark.slow


def _post(url: str, body: bytes, content_type: str) -> None:
    # A fresh connection per request (urllib closes it): the kernel hands each to a worker.
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, "Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200, r.read()


def _json_rows(rows: np.ndarray) -> bytes:
    return json.dumps(
        {"instances": [[None if np.isnan(v) else float(v) for v in row] for row in rows]}
    ).encode()


def _csv_rows(rows: np.ndarray) -> bytes:
    return "\n".join(
        ",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows
    ).encode()


def _wait_for(condition: Callable[[], bool], within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_workers_prometheus_sees_the_totals_of_both_workers(
    nullable_bundle: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(nullable_bundle)
    test_X = np.load(nullable_bundle.parent / "nullable-test_X.npy")
    area = manifest.feature_names.index("mean_area")
    out_of_range = test_X[:40].repeat(5, axis=0) * np.linspace(1.0, 1.1, 200)[:, None]
    out_of_range[:, area] = 1e9  # 200 rows, all distinct, above the training range
    singles = test_X * 1.01  # 143 distinct single-row requests
    batches = (test_X * 0.99)[:140].reshape(28, 5, -1)  # 28 CSV requests of 5 rows
    again = singles[:30]  # sent again one at a time: cache hits where they land on the same worker

    model_dir = sagemaker_model_dir(nullable_bundle / "model.tar.gz", tmp_path / "sm")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = start_server(
        model_dir, tmp_path / "server.log", "--workers", "2", MLSHIP_METRICS_DIR=str(metrics_dir)
    )
    try:
        with running_prometheus(f"127.0.0.1:{server.port}", tmp_path, rules=RULES) as prom:
            # A first scrape before any traffic, so that rates see the counters rise from 0.
            assert _wait_for(lambda: scalar(prom, "mlship_drift_rows_total") == 0)

            calls: list[tuple[str, bytes, str]] = []
            calls += [(f"{server.url}/v1/predict", _json_rows(r[None]), "application/json")
                      for r in singles]  # fmt: skip
            calls += [(f"{server.url}/invocations", _csv_rows(b), "text/csv") for b in batches]
            calls += [
                (
                    f"{server.url}/invocations",
                    _json_rows(out_of_range[i : i + 5]),
                    "application/json",
                )
                for i in range(0, 200, 5)
            ]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda c: _post(*c), calls))
                # The kernel picks the worker of each connection: more distinct rows until
                # both workers have served some.
                extra = []
                for k in range(10):
                    served = predictions_per_worker(metrics_dir)
                    if len(served) == 2 and all(v > 0 for v in served.values()):
                        break
                    rows = test_X[:40] * (1.02 + k / 100)
                    list(pool.map(lambda r: _post(f"{server.url}/v1/predict", _json_rows(r[None]),
                                                  "application/json"), rows))  # fmt: skip
                    extra.append(rows)
            for row in again:
                _post(f"{server.url}/v1/predict", _json_rows(row[None]), "application/json")
            sent = np.concatenate(
                [singles, batches.reshape(-1, test_X.shape[1]), out_of_range, *extra, again]
            )
            n = sent.shape[0]

            per_worker = predictions_per_worker(metrics_dir)
            assert len(per_worker) == 2 and all(v > 0 for v in per_worker.values()), per_worker
            assert sum(per_worker.values()) == n

            assert _wait_for(lambda: scalar(prom, "mlship_drift_rows_total") == n), scalar(
                prom, "mlship_drift_rows_total"
            )
            # Scraped again: the figures hold at every scrape, not once.
            time.sleep(1.5)
            assert scalar(prom, "mlship_drift_rows_total") == n
            assert scalar(prom, "sum(mlship_predictions_total)") == n
            missing, outside = direct_quality(sent, manifest)
            assert missing[NULLABLE_FEATURE] > 0 and outside["mean_area"] == 200
            assert {
                dict(k)["feature"]: v
                for k, v in query(prom, "mlship_input_missing_values_total").items()
            } == missing
            assert {
                dict(k)["feature"]: v
                for k, v in query(prom, "mlship_input_out_of_range_total").items()
            } == outside
            psi = {
                dict(k)["feature"]: v for k, v in query(prom, "mlship_feature_drift_psi").items()
            }
            expected_psi = direct_psi_all(sent, manifest)
            assert psi.keys() == expected_psi.keys()
            for name, value in expected_psi.items():
                assert psi[name] == pytest.approx(value, rel=1e-9), name
            hits = scalar(prom, "mlship_prediction_cache_hits_total") or 0.0
            misses = scalar(prom, "mlship_prediction_cache_misses_total")
            assert misses is not None and hits + misses == n
            # Every row sent was distinct, except `again` sent one at a time: each miss added
            # one entry to the cache of the worker that served it.
            assert scalar(prom, "mlship_prediction_cache_entries") == misses
            assert scalar(prom, "mlship_microbatch_rows_total") == misses
            assert (
                scalar(prom, 'sum(mlship_http_requests_total{route="/invocations",status="200"})')
                == len(batches) + 40
            )

            # The out-of-range alert rule sees both workers' rows: pending (for: 15m).
            def pending() -> bool:
                alerts = api(prom, "/api/v1/alerts")["alerts"]
                return any(a["labels"]["alertname"] == "MlshipInputsOutOfRange" for a in alerts)

            assert _wait_for(pending), api(prom, "/api/v1/alerts")

        # Any worker answers a scrape with the totals: fresh connections reach both.
        for _ in range(10):
            request = urllib.request.Request(
                f"{server.url}/metrics", headers={"Connection": "close"}
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                text = r.read().decode()
            assert f"mlship_drift_rows_total {float(n)}" in text
    finally:
        stop_server(server)
