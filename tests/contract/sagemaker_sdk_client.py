"""Requests as the SageMaker SDK's predictors make them, run with the SDK itself.

Not a test module: ``tests/contract/test_sagemaker_sdk.py`` runs it in the ``sagemaker-sdk``
dependency group (``uv run --only-group sagemaker-sdk``), which resolves apart from the
project's. For each serializer and deserializer pair a predictor is commonly built with, the
body is the serializer's output, ``Content-Type`` its ``CONTENT_TYPE`` and ``Accept`` the
deserializer's ``ACCEPT`` joined by commas, as ``Predictor.predict`` passes them to
``invoke_endpoint``, which hands them to the container unchanged. The answer is read by the
deserializer, and what it returns is printed as JSON.

    python sagemaker_sdk_client.py URL rows ROWS.npy FEATURE_NAMES_JSON
    python sagemaker_sdk_client.py URL table RECORDS.json FEATURE_NAMES_JSON

``rows``: a numeric matrix (``numpy.save``); ``table``: records with text and gaps (null),
sent as a pandas DataFrame and as its records.
"""

from __future__ import annotations

import io
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import numpy as np
from sagemaker.core import deserializers, serializers


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def main(url: str, mode: str, data_path: str, names_json: str) -> None:
    names = json.loads(names_json)
    cases = _row_cases(np.load(data_path), names) if mode == "rows" else _table_cases(data_path)
    out: dict[str, Any] = {}
    for name, (serializer, deserializer, data) in cases.items():
        body = serializer.serialize(data)
        headers = {
            "Content-Type": serializer.CONTENT_TYPE,
            "Accept": ", ".join(deserializer.ACCEPT),
        }
        request = urllib.request.Request(
            f"{url}/invocations",
            data=body.encode() if isinstance(body, str) else body,
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, content_type = response.status, response.headers["Content-Type"]
                decoded = deserializer.deserialize(io.BytesIO(response.read()), content_type)
        except urllib.error.HTTPError as e:
            out[name] = {"status": e.code, "error": e.read().decode()}
            continue
        out[name] = {
            "status": status,
            "content_type": content_type,
            "headers": headers,
            "decoded": _plain(decoded),
            "sent_bytes": len(body),
        }
    print(json.dumps(out))


def _row_cases(rows: np.ndarray, names: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    records = [dict(zip(names, r, strict=True)) for r in rows.tolist()]
    return {
        # SKLearnPredictor's defaults
        "numpy": (serializers.NumpySerializer(), deserializers.NumpyDeserializer(), rows),
        "csv": (serializers.CSVSerializer(), deserializers.CSVDeserializer(), rows),
        "json": (serializers.JSONSerializer(), deserializers.JSONDeserializer(), rows),
        "json-instances": (
            serializers.JSONSerializer(),
            deserializers.JSONDeserializer(),
            {"instances": rows.tolist()},
        ),
        "jsonlines-records": (
            serializers.JSONLinesSerializer(),
            deserializers.JSONLinesDeserializer(),
            records,
        ),
        "jsonlines-lists": (
            serializers.JSONLinesSerializer(),
            deserializers.JSONLinesDeserializer(),
            rows.tolist(),
        ),
        "csv-in-numpy-out": (serializers.CSVSerializer(), deserializers.NumpyDeserializer(), rows),
    }


def _table_cases(records_path: str) -> dict[str, tuple[Any, Any, Any]]:
    import pandas as pd

    with open(records_path) as f:
        records = json.load(f)
    frame = pd.DataFrame.from_records(records)
    frame = frame.where(frame.notna(), np.nan)  # gaps as pandas holds them: NaN, not None
    return {
        "table-csv": (serializers.CSVSerializer(), deserializers.CSVDeserializer(), frame),
        "table-csv-numpy": (serializers.CSVSerializer(), deserializers.NumpyDeserializer(), frame),
        "table-jsonlines": (
            serializers.JSONLinesSerializer(),
            deserializers.JSONLinesDeserializer(),
            records,
        ),
        # the DataFrame's own records: its gaps are float NaN, which json.dumps writes as NaN
        "table-jsonlines-nan": (
            serializers.JSONLinesSerializer(),
            deserializers.JSONLinesDeserializer(),
            frame.to_dict(orient="records"),
        ),
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
