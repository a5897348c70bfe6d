"""Read captured predictions back: SageMaker Data Capture JSON Lines, local or on S3.

The documented record (one JSON object per line) is::

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                        "data": ..., "encoding": "CSV" | "JSON" | "BASE64"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": ..., "inferenceId": ... (optional), "inferenceTime": ...},
     "eventVersion": "0"}

SageMaker writes it for its endpoints (``s3://<capture prefix>/<endpoint>/<variant>/yyyy/mm/dd/
hh/*.jsonl``) with the request and response bodies as the caller and the container sent them;
the mlship service writes it for every target (``MLSHIP_CAPTURE_DIR``) with the validated rows
as ``{"instances": [...]}``. Inputs are read in the shapes the service accepts (CSV rows, JSON
Lines rows, JSON rows, records or columns under ``features``/``instances``/``inputs``/
``records``, or a NumPy ``.npy`` array, kept as BASE64); the values go through the bundle's
feature schema (``core.features``). Outputs are ``/invocations`` answers: JSON
``{"predictions": [...], "probabilities": [...]}``, CSV ``label,p1,p2,...``, JSON Lines (one
row, and one answer, per line), or a ``.npy`` array of the predictions.

A record that cannot be read (a malformed line, an error answer, rows and predictions that do
not match, another model version) is skipped and counted by reason, never guessed at.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DataError, InvalidInput
from core.features import FeatureSchema
from core.manifest import Manifest
from core.media import CSV, JSON, JSONLINES, JSONLINES_ALIASES, NPY, without_bom
from core.npy import NpyError, npy_to_matrix, read_npy
from core.s3 import S3Error, is_s3_uri, parse_s3_uri, s3_client

CAPTURE_SUFFIX = ".jsonl"
JSON_LINES = frozenset({JSONLINES, *JSONLINES_ALIASES})
# The JSON wrappers of a request body (the service's accepted shapes).
_WRAPPERS = ("features", "instances", "inputs", "records")


class CaptureError(DataError):
    """The capture location holds nothing readable."""


@dataclass
class Captured:
    """Predicted rows read from capture files, in time order; one entry per row.

    Attributes:
        times: Inference time of each row's request, seconds since the epoch (UTC).
        inference_ids: The request's ``inferenceId`` (its ``eventId`` when it has none).
        positions: Position of the row in its request (0 for single-row requests).
        request_rows: Rows of the row's request.
        X: (rows, features) float64, NaN for missing values.
        predictions: The answered label or value of each row.
        probabilities: (rows, classes) in ``classes`` order, or None when the answers carry
            none (regressors, CSV answers without them).
        records: Records read; ``files``: files read; ``skipped``: records skipped, by reason.
    """

    times: np.ndarray
    inference_ids: list[str]
    positions: np.ndarray
    request_rows: np.ndarray
    X: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray | None
    records: int = 0
    files: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


@dataclass
class _Record:
    time: float
    inference_id: str
    X: np.ndarray
    labels: list[Any]
    probabilities: list[list[float]] | None


class _Skip(Exception):
    """A record that cannot be used, with the reason counted in the report."""


def read_capture(source: str, manifest: Manifest) -> Captured:
    """Read every ``*.jsonl`` capture file under ``source`` (a directory, a file, or an
    ``s3://bucket/prefix``) for the model described by ``manifest``.

    Raises:
        CaptureError: when no capture file is found or none of its records is usable.
        S3Error: when S3 cannot be listed or read.
    """
    schema = FeatureSchema(manifest)
    classes = manifest.target.classes
    skipped: Counter[str] = Counter()
    records: list[_Record] = []
    files = 0
    total = 0
    for text in _capture_files(source):
        files += 1
        for line in text.splitlines():
            if not line.strip():
                continue
            total += 1
            try:
                records.append(_record(line, schema, classes, manifest.version))
            except _Skip as e:
                skipped[str(e)] += 1
            except InvalidInput as e:
                skipped[f"input does not fit the model: {e}"[:160]] += 1
    if files == 0:
        raise CaptureError(
            f"No capture files (*{CAPTURE_SUFFIX}) under {source}. Point --capture at "
            "MLSHIP_CAPTURE_DIR, or at the S3 prefix of an endpoint's data capture."
        )
    if not records:
        reasons = "; ".join(f"{n} x {r}" for r, n in skipped.most_common(3))
        raise CaptureError(f"None of the {total} records under {source} is usable ({reasons}).")
    return _rows(records, classes, files, skipped)


def _rows(
    records: list[_Record], classes: list[Any] | None, files: int, skipped: Counter[str]
) -> Captured:
    records.sort(key=lambda r: r.time)
    sizes = np.array([r.X.shape[0] for r in records])
    with_proba = all(r.probabilities is not None for r in records)
    probabilities = None
    if with_proba and classes:
        probabilities = np.array(
            [p for r in records for p in (r.probabilities or [])], dtype=np.float64
        ).reshape(-1, len(classes))
    labels = [label for r in records for label in r.labels]
    return Captured(
        times=np.repeat([r.time for r in records], sizes).astype(np.float64),
        inference_ids=[r.inference_id for r in records for _ in range(r.X.shape[0])],
        positions=np.concatenate([np.arange(n) for n in sizes]),
        request_rows=np.repeat(sizes, sizes),
        X=np.concatenate([r.X for r in records]),
        predictions=np.array(labels, dtype=np.float64 if not classes else None),
        probabilities=probabilities,
        records=len(records),
        files=files,
        skipped=dict(skipped),
    )


# -- sources --------------------------------------------------------------------------------


def _capture_files(source: str) -> Iterator[str]:
    """The text of each capture file under ``source``, in name (so time) order."""
    if is_s3_uri(source):
        yield from _s3_files(source)
        return
    path = Path(source)
    if path.is_file():
        yield path.read_text(encoding="utf-8")
        return
    if not path.is_dir():
        raise CaptureError(f"--capture {source}: no such directory or file.")
    for file in sorted(path.rglob(f"*{CAPTURE_SUFFIX}")):
        yield file.read_text(encoding="utf-8")


def _s3_files(uri: str) -> Iterator[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        parse_s3_uri(uri)  # raises with the expected form
    client = s3_client()
    try:
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(CAPTURE_SUFFIX)
        ]
        for key in sorted(keys):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield body.decode("utf-8")
    except (BotoCoreError, ClientError) as e:
        raise S3Error(
            f"Could not read the capture files under {uri} ({e}). Check the prefix and that "
            "your AWS credentials may list and read it (s3:ListBucket, s3:GetObject, and "
            "kms:Decrypt for SSE-KMS)."
        ) from e


# -- records --------------------------------------------------------------------------------


def _record(line: str, schema: FeatureSchema, classes: list[Any] | None, version: str) -> _Record:
    try:
        record = json.loads(line)
        capture = record["captureData"]
        meta = record["eventMetadata"]
        request = capture["endpointInput"]
        answer = capture["endpointOutput"]
    except (ValueError, KeyError, TypeError):
        raise _Skip("not a Data Capture record") from None
    inference_id = meta.get("inferenceId") or meta.get("eventId")
    when = meta.get("inferenceTime")
    if not isinstance(inference_id, str) or not isinstance(when, str):
        raise _Skip("no eventId/inferenceId or inferenceTime")
    try:
        at = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _Skip("inferenceTime is not an ISO 8601 time") from None
    X = _input_rows(*_payload(request), schema)
    labels, probabilities, answered_version = _answer(*_payload(answer), classes)
    if answered_version is not None and answered_version != version:
        raise _Skip(f"answered by another model version ({str(answered_version)[:40]})")
    if len(labels) != X.shape[0]:
        raise _Skip("the answer does not have one prediction per input row")
    return _Record(at, inference_id, X, labels, probabilities)


def _payload(payload: Any) -> tuple[str, str | bytes]:
    """The media type and the decoded body of an ``endpointInput``/``endpointOutput``: bytes
    for a ``.npy`` array (which SageMaker keeps as BASE64, as any body whose type its capture
    configuration does not list as CSV or JSON), text for every other type."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
        raise _Skip("a payload without data")
    media = str(payload.get("observedContentType") or "").split(";", 1)[0].strip().lower()
    encoding = str(payload.get("encoding") or "").upper()
    data: str = payload["data"]
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise _Skip("BASE64 data that does not decode") from None
        if media == NPY:
            return media, raw
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Skip("BASE64 data that is not UTF-8 text") from None
    elif encoding not in ("CSV", "JSON"):
        raise _Skip(f"unknown encoding {encoding[:20]!r}")
    if media == NPY:
        raise _Skip("a .npy body captured as text, not BASE64")
    return media, without_bom(data)  # as the service read it


def _input_rows(media: str, data: str | bytes, schema: FeatureSchema) -> np.ndarray:
    if isinstance(data, bytes):  # a .npy array (_payload), read as the service reads it
        try:
            return npy_to_matrix(data, schema)
        except NpyError:
            raise _Skip("input is not a NumPy .npy array") from None
    if media == CSV:
        return schema.validate(_csv_matrix(data, schema))
    if media in JSON_LINES:  # one row (a list in feature order, or a record) per line
        try:
            rows = [json.loads(line) for line in data.splitlines() if line.strip()]
        except ValueError:
            raise _Skip("input is not valid JSON Lines") from None
        if not rows or not all(isinstance(r, list | dict) for r in rows):
            raise _Skip("JSON Lines input whose lines are not rows")
        return schema.validate(schema.rows_to_matrix(rows))
    if media == "application/json" or media.endswith("+json"):
        try:
            payload = json.loads(data)
        except ValueError:
            raise _Skip("input is not valid JSON") from None
        return schema.validate(_json_matrix(payload, schema))
    raise _Skip(f"input of content type {media[:40]!r}")


def _csv_matrix(data: str, schema: FeatureSchema) -> np.ndarray:
    """CSV input rows read by the service's rules (:meth:`FeatureSchema.text_value`): a text
    feature's category as its code, an empty cell or a null spelling as missing."""
    rows = [r for r in csv.reader(io.StringIO(data)) if r]
    if rows and [c.strip() for c in rows[0]] == schema.names:
        rows = rows[1:]
    if not rows:
        raise _Skip("an empty CSV input")
    out = np.empty((len(rows), schema.n))
    for i, row in enumerate(rows):
        if len(row) != schema.n:
            raise _Skip("CSV input rows do not have one value per feature")
        for j, cell in enumerate(row):
            try:
                out[i, j] = schema.text_value(cell, i, j, "")
            except InvalidInput:
                raise _Skip("CSV input holds a value that is not a number") from None
    return out


def _json_matrix(payload: Any, schema: FeatureSchema) -> np.ndarray:
    """The service's JSON request shapes, unwrapped; values checked by ``core.features``."""
    if isinstance(payload, dict):
        keys = [k for k in _WRAPPERS if k in payload]
        if not keys:
            return schema.rows_to_matrix([payload])  # one record
        value = payload[keys[0]]
        if isinstance(value, dict):
            if keys[0] == "inputs":
                return schema.columns_to_matrix(value)
            return schema.rows_to_matrix([value])
        payload = value
    if not isinstance(payload, list) or not payload:
        raise _Skip("JSON input in a shape the service does not accept")
    if not isinstance(payload[0], list | dict):
        return schema.rows_to_matrix([payload])  # one bare row
    return schema.rows_to_matrix(payload)


def _answer(
    media: str, data: str | bytes, classes: list[Any] | None
) -> tuple[list[Any], list[list[float]] | None, Any]:
    """Predictions, probabilities (or None) and the answering model version (or None)."""
    if isinstance(data, bytes):  # a .npy array of the predictions alone (app's npy_answer)
        try:
            predictions = read_npy(data)
        except NpyError:
            raise _Skip("answer is not a NumPy .npy array") from None
        if predictions.ndim != 1:
            raise _Skip("a .npy answer that is not one prediction per row")
        return [_label(v, classes) for v in predictions.tolist()], None, None
    if media == CSV:  # RFC 4180: a label may be quoted (the service quotes as needed)
        lines = [cells for cells in csv.reader(io.StringIO(data)) if cells]
        labels = [_label(cells[0], classes) for cells in lines]
        if classes and lines and all(len(cells) == len(classes) + 1 for cells in lines):
            try:
                return labels, [[float(c) for c in cells[1:]] for cells in lines], None
            except ValueError:
                raise _Skip("CSV answer with probabilities that are not numbers") from None
        return labels, None, None
    if media in JSON_LINES:  # one answer per line, as for a request of that row alone
        answered: list[Any] = []
        rows: list[list[float]] = []
        for line in (line for line in data.splitlines() if line.strip()):
            part, proba, _ = _answer(JSON, line, classes)
            answered += part
            rows += proba or []
        return answered, rows if len(rows) == len(answered) else None, None
    if media == "application/json" or media.endswith("+json"):
        try:
            payload = json.loads(data)
        except ValueError:
            raise _Skip("answer is not valid JSON") from None
        if not isinstance(payload, dict):
            raise _Skip("JSON answer without predictions")
        found = payload.get("predictions", payload.get("prediction"))
        if not isinstance(found, list):
            raise _Skip("JSON answer without predictions (an error answer?)")
        found_labels = [_label(v, classes) for v in found]
        probabilities = payload.get("probabilities")
        if probabilities is not None and not (
            isinstance(probabilities, list)
            and len(probabilities) == len(found_labels)
            and all(isinstance(p, list) and len(p) == len(classes or []) for p in probabilities)
        ):
            raise _Skip("JSON answer with probabilities that do not match the classes")
        return found_labels, probabilities, payload.get("model_version")
    raise _Skip(f"answer of content type {media[:40]!r}")


def _answer_text(label: Any) -> str:
    """A class as a CSV answer spells it: a JSON value (``true`` for a True class)."""
    return "true" if label is True else "false" if label is False else str(label)


def _label(value: Any, classes: list[Any] | None) -> Any:
    """A class of the manifest (matched on its text, as CSV carries it), or a number."""
    if classes:
        spellings = [value, value.strip()] if isinstance(value, str) else [value]
        for text in spellings:
            for c in classes:
                if text == c or str(text) == str(c) or str(text) == _answer_text(c):
                    return c
        raise _Skip(f"a predicted class the model does not have ({str(value)[:20]})")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Skip("a predicted value that is not a number")
    try:
        return float(value)
    except ValueError:
        raise _Skip("a predicted value that is not a number") from None
