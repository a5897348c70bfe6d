"""Prediction capture: SageMaker Data Capture records, off the request path, nothing lost."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from app.capture import CaptureWriter
from core.errors import ConfigError
from core.model import Model, Prediction
from tests.app.conftest import ClientFactory

# The record shape SageMaker Data Capture documents (Model Monitor, "Capture data from a
# real-time endpoint"): one JSON object per line.
RECORD_KEYS = {"captureData", "eventMetadata", "eventVersion"}
PAYLOAD_KEYS = {"observedContentType", "mode", "data", "encoding"}
METADATA_KEYS = {"eventId", "inferenceId", "inferenceTime"}
SAGEMAKER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _records(root: Path) -> list[dict[str, Any]]:
    lines = [line for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    return [json.loads(line) for line in lines]


def _assert_sagemaker_record(record: dict[str, Any]) -> None:
    assert set(record) == RECORD_KEYS
    assert record["eventVersion"] == "0"
    assert set(record["captureData"]) == {"endpointInput", "endpointOutput"}
    for key, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
        payload = record["captureData"][key]
        assert set(payload) == PAYLOAD_KEYS
        assert payload["mode"] == mode
        assert payload["observedContentType"] == "application/json"
        assert payload["encoding"] == "JSON"
        assert isinstance(payload["data"], str)
    meta = record["eventMetadata"]
    assert set(meta) == METADATA_KEYS
    assert SAGEMAKER_TIME.match(meta["inferenceTime"]), meta["inferenceTime"]
    uuid.UUID(meta["eventId"])


def test_capture_writes_every_prediction_in_sagemaker_data_capture_format(
    make_client: ClientFactory, X: np.ndarray, tmp_path: Path
) -> None:
    client = make_client(capture_dir=str(tmp_path))
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    rows = X[:6].copy()
    csv = "\n".join(",".join(repr(float(v)) for v in row) for row in rows[1:4])
    tensor = {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64",
                          "data": rows[4:6].ravel().tolist()}]}  # fmt: skip

    answers = [
        client.post(
            "/v1/predict", json={"features": rows[0].tolist()}, headers={"X-Request-Id": "rest-1"}
        ),
        client.post(
            "/invocations",
            content=csv,
            headers={"Content-Type": "text/csv", "X-Request-Id": "sm-1"},
        ),
        client.post("/v2/models/mlship/infer", json=tensor, headers={"X-Request-Id": "v2-1"}),
        client.post("/v1/predict", json={"features": [1.0]}),  # 422: nothing predicted
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 422]
    client.__exit__(None, None, None)  # shutdown: the capture completes its file

    assert not list(tmp_path.rglob("*.part"))
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\d\d", str(files[0].parent.relative_to(tmp_path)))
    records = _records(tmp_path)
    assert [r["eventMetadata"]["inferenceId"] for r in records] == ["rest-1", "sm-1", "v2-1"]
    for record, sent in zip(records, (rows[:1], rows[1:4], rows[4:6]), strict=True):
        _assert_sagemaker_record(record)
        got = np.array(json.loads(record["captureData"]["endpointInput"]["data"])["instances"])
        np.testing.assert_array_equal(got, sent)
        answer = json.loads(record["captureData"]["endpointOutput"]["data"])
        expected = model.predict(sent)
        assert answer["predictions"] == expected.labels.tolist()
        assert expected.probabilities is not None
        np.testing.assert_allclose(answer["probabilities"], expected.probabilities, rtol=1e-12)
        assert answer["classes"] == model.classes
        assert answer["model_version"] == model.version


def test_capture_missing_values_are_captured_as_null(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, "v1", None)
    X = np.array([[1.5, np.nan]])

    line = writer.line(0.0, "id-1", X, Prediction(np.array([0.25]), None))

    record = json.loads(line)
    assert record["captureData"]["endpointInput"]["data"] == '{"instances":[[1.5,null]]}'
    assert record["eventMetadata"]["inferenceTime"] == "1970-01-01T00:00:00Z"
    assert json.loads(record["captureData"]["endpointOutput"]["data"])["predictions"] == [0.25]


def test_capture_string_labels_are_written(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, "v1", ["a", "b"])
    prediction = Prediction(np.array(["b"]), np.array([[0.1, 0.9]]))

    record = json.loads(writer.line(0.0, "id-1", np.ones((1, 2)), prediction))

    assert json.loads(record["captureData"]["endpointOutput"]["data"])["predictions"] == ["b"]


def test_capture_never_waits_for_the_writer_it_drops_and_counts_when_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    written = Counter("written", "", registry=registry)
    dropped = Counter("dropped", "", ("reason",), registry=registry)
    writer = CaptureWriter(
        tmp_path, "v1", None, max_queued_rows=5, records=written, dropped=dropped
    )
    release = threading.Event()
    real_write = writer._write

    def stuck_write(batch: list[Any]) -> int:
        release.wait(timeout=60)  # a disk that does not answer
        return real_write(batch)

    monkeypatch.setattr(writer, "_write", stuck_write)
    writer.start()
    one = Prediction(np.array([1.0]), None)

    # The writer is stuck: every submit still returns at once, 5 rows are held, the rest
    # dropped (submit would hang here, and the test time out, if it waited for the writer).
    for i in range(12):
        writer.submit(np.full((1, 2), float(i)), one, f"id-{i}")
    release.set()
    writer.close()

    assert [r["eventMetadata"]["inferenceId"] for r in _records(tmp_path)] == [
        f"id-{i}" for i in range(5)
    ]
    assert registry.get_sample_value("dropped_total", {"reason": "queue_full"}) == 7
    assert registry.get_sample_value("written_total") == 5
    assert writer.dropped == 7


def test_capture_rotates_by_age_and_hour_and_completes_each_file(tmp_path: Path) -> None:
    now = [1_700_002_680.0]  # 2023-11-14T22:58:00Z
    writer = CaptureWriter(tmp_path, "v1", None, rotate_seconds=60, clock=lambda: now[0])
    one = Prediction(np.array([1.0]), None)
    # seconds since 22:58:00: 0 10 50 | 80 (60 s after the first file opened) 110 | 130 (23:00)
    for step in (0, 10, 40, 30, 30, 20, 5):
        now[0] += step
        writer.submit(np.ones((1, 2)), one, f"t{now[0]:.0f}")
    writer.close()

    files = sorted(tmp_path.rglob("*.jsonl"))
    assert [str(f.parent.relative_to(tmp_path)) for f in files] == [
        "2023/11/14/22",
        "2023/11/14/22",
        "2023/11/14/23",
    ]
    assert [len(f.read_text().splitlines()) for f in files] == [3, 2, 2]
    assert not list(tmp_path.rglob("*.part"))
    assert all(f"-{writer.worker}-" in f.name for f in files)


def test_capture_write_errors_are_counted_and_never_reach_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = CaptureWriter(tmp_path, "v1", None)

    def disk_full(at: float) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_open", disk_full)
    writer.start()
    writer.submit(np.ones((1, 2)), Prediction(np.array([1.0]), None), "id")
    writer.close()

    assert (writer.written, writer.dropped_error) == (0, 1)


def test_capture_dir_that_cannot_be_created_stops_the_start(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(ConfigError, match=r"MLSHIP_CAPTURE_DIR=.*cannot be created"):
        make_client(capture_dir=str(blocker / "capture"))


def test_capture_is_off_by_default(client: TestClient, X: np.ndarray) -> None:
    assert client.app.state.service.capture is None  # type: ignore[attr-defined]
    assert "mlship_capture_records_total" not in client.get("/metrics").text


def test_capture_a_record_that_cannot_be_serialised_is_counted_not_fatal(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, "v1", None)
    writer.start()
    odd = Prediction(np.array([object()], dtype=object), None)  # not JSON
    writer.submit(np.ones((1, 2)), odd, "odd")
    writer.submit(np.ones((1, 2)), Prediction(np.array([1.0]), None), "fine")
    writer.close()

    assert writer.dropped_error == 1
    assert [r["eventMetadata"]["inferenceId"] for r in _records(tmp_path)] == ["fine"]
