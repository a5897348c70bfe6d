"""A text body that starts with a UTF-8 byte order mark is read as the same body without it.

Windows tools start a text file with one (Excel's "CSV UTF-8", PowerShell 5's
``Out-File -Encoding utf8``), and a Batch Transform job sends it in the first mini-batch of each
such file: refusing it failed the job on its first request. RFC 8259, section 8.1: "implementations
that parse JSON texts MAY ignore the presence of a byte order mark rather than treating it as an
error".
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.inputs import FAST_PATH_BYTES

BOM = "\ufeff".encode()

Body = Callable[[np.ndarray, list[str]], bytes]


def _csv(rows: np.ndarray, names: list[str]) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows.tolist()).encode()


def _lists(rows: np.ndarray, names: list[str]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows.tolist()).encode()


def _records(rows: np.ndarray, names: list[str]) -> bytes:
    records = (dict(zip(names, row, strict=True)) for row in rows.tolist())
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def _instances(rows: np.ndarray, names: list[str]) -> bytes:
    return json.dumps({"instances": rows.tolist()}).encode()


BODIES: dict[str, tuple[str, Body]] = {
    "CSV": ("text/csv", _csv),
    "JSON Lines of lists": ("application/jsonlines", _lists),
    "JSON Lines of records": ("application/jsonlines", _records),
    "JSON": ("application/json", _instances),
}


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("kind", list(BODIES))
def test_a_leading_byte_order_mark_is_not_data(
    client: TestClient, X: np.ndarray, feature_names: list[str], kind: str, size: str
) -> None:
    """Small bodies take the exact parsers, large ones (past FAST_PATH_BYTES) the C++ ones:
    both answer the marked body as the unmarked one, row for row."""
    media, body = BODIES[kind]
    rows = X[:3] if size == "small" else np.tile(X, (12, 1))
    plain = body(rows, feature_names)
    assert (len(plain) > FAST_PATH_BYTES) == (size == "large")
    headers = {"content-type": media, "accept": "text/csv"}

    expected = client.post("/invocations", content=plain, headers=headers)
    marked = client.post("/invocations", content=BOM + plain, headers=headers)

    assert expected.status_code == 200, expected.text
    assert marked.status_code == 200, marked.text
    assert marked.text == expected.text
    assert marked.text.count("\n") == rows.shape[0]


def test_the_rest_and_open_inference_routes_ignore_it_too(
    client: TestClient, X: np.ndarray
) -> None:
    json_type = {"content-type": "application/json"}
    rest = json.dumps({"instances": X[:2].tolist()}).encode()
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [2, X.shape[1]]}
    v2 = json.dumps({"inputs": [tensor | {"data": X[:2].ravel().tolist()}]}).encode()

    for path, body, answer in (
        ("/v1/predict", rest, "predictions"),
        ("/v2/models/mlship/infer", v2, "outputs"),
    ):
        expected = client.post(path, content=body, headers=json_type)
        marked = client.post(path, content=BOM + body, headers=json_type)
        assert expected.status_code == marked.status_code == 200, (path, marked.text)
        assert marked.json()[answer] == expected.json()[answer]


@pytest.mark.parametrize("media", ["text/csv", "application/jsonlines", "application/json"])
def test_a_body_of_only_a_byte_order_mark_has_no_rows(client: TestClient, media: str) -> None:
    """Each parser's own words for a body without rows, as a client error."""
    response = client.post("/invocations", content=BOM + b"\n", headers={"content-type": media})

    assert response.status_code in (400, 422), response.text
    assert any(words in response.json()["error"] for words in ("empty", "no rows"))


def test_a_byte_order_mark_inside_the_body_is_still_an_error(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    """Only the body's first bytes are a file's start: a mark at the start of a later line is
    a damaged line, named as such."""
    lines = _lists(X[:3], feature_names).splitlines(keepends=True)
    body = lines[0] + BOM + lines[1] + lines[2]

    response = client.post(
        "/invocations", content=body, headers={"content-type": "application/jsonlines"}
    )

    assert response.status_code == 400, response.text
    assert "JSON Lines row 1" in response.json()["error"]
