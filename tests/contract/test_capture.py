"""Capture in the real server with 2 workers: every prediction answered before SIGTERM is in a
complete capture file after it, each worker writing its own files."""

from __future__ import annotations

import json
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.contract.conftest import start_server
from tests.monitoring.prometheus import predictions_per_worker

pytestmark = pytest.mark.slow


def test_capture_loses_nothing_on_sigterm(
    sagemaker_dir: Path, logistic_bundle: Path, tmp_path: Path
) -> None:
    X = np.load(logistic_bundle.parent / f"{logistic_bundle.name}-test_X.npy")
    capture = tmp_path / "capture"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Files complete only at shutdown (rotation is an hour away), so every record is still
    # queued or in a .part file when SIGTERM arrives.
    server = start_server(
        sagemaker_dir,
        tmp_path / "server.log",
        "--workers",
        "2",
        MLSHIP_CAPTURE_DIR=str(capture),
        MLSHIP_CAPTURE_ROTATE_SECONDS="3600",
        MLSHIP_METRICS_DIR=str(metrics_dir),
    )
    sent: dict[str, np.ndarray] = {}

    def post(item: tuple[str, np.ndarray]) -> int:
        request_id, row = item
        request = urllib.request.Request(
            f"{server.url}/v1/predict",
            data=json.dumps({"features": row.tolist()}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Request-Id": request_id,
                "Connection": "close",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return int(r.status)

    try:
        # Rounds of 100 concurrent requests on fresh connections until both workers have
        # served some (the kernel picks the worker of each connection).
        for round_ in range(10):
            batch = {f"req-{round_}-{i}": X[i % len(X)] * (1 + i / 1000) for i in range(100)}
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(post, batch.items())) == {200}
            sent |= batch
            served = predictions_per_worker(metrics_dir)
            if len(served) == 2 and all(v > 0 for v in served.values()):
                break
    finally:
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)

    assert code == 0, server.logs()
    assert not list(capture.rglob("*.part")), "a capture file was left incomplete"
    files = list(capture.rglob("*.jsonl"))
    writers = {f.name.split("-")[3] for f in files}  # MM-SS-mmm-<pid>-<id>.jsonl
    assert len(writers) == 2, files  # both workers served, each wrote its own file
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    by_id = {r["eventMetadata"]["inferenceId"]: r for r in records}
    assert len(records) == len(sent) == len(by_id)
    for request_id, row in sent.items():
        data = by_id[request_id]["captureData"]["endpointInput"]["data"]
        np.testing.assert_array_equal(json.loads(data)["instances"], [row])
