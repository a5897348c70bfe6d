"""SageMaker routes in-process: ``/ping`` and ``/invocations`` in JSON, CSV, JSON Lines and
NumPy .npy."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.model import Model
from tests.app.conftest import ClientFactory

CSV = {"content-type": "text/csv"}


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(v) for v in row) for row in rows.tolist()) + "\n"


def test_ping_is_200_when_ready(client: TestClient) -> None:
    assert client.get("/ping").status_code == 200


def test_invocations_json_instances(client: TestClient, X: np.ndarray) -> None:
    response = client.post("/invocations", json={"instances": X[:3].tolist()})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    assert body["predictions"] == model.predict(X[:3]).labels.tolist()
    assert body["model_version"] == "test-logistic-0"
    assert body["classes"] == [0, 1]


def test_invocations_csv_in_json_out(client: TestClient, X: np.ndarray) -> None:
    as_csv = client.post("/invocations", content=_csv(X[:4]), headers=CSV).json()
    as_json = client.post("/invocations", json=X[:4].tolist()).json()

    assert as_csv == as_json


def test_json_lines_sent_as_json_names_the_content_type_to_send(
    client: TestClient, X: np.ndarray
) -> None:
    """A Batch Transform job with ContentType application/json and SplitType Line sends JSON
    Lines as JSON: the 400 says which content type takes them; /v1/predict, which takes no
    JSON Lines, does not suggest it."""
    body = "".join(f"{json.dumps(row)}\n" for row in X[:3].tolist())
    json_type = {"content-type": "application/json"}

    invocations = client.post("/invocations", content=body, headers=json_type)
    predict = client.post("/v1/predict", content=body, headers=json_type)
    one_line = client.post("/invocations", content="[1, 2] [3]", headers=json_type)

    assert invocations.status_code == 400
    assert invocations.json()["error"] == (
        "The body is not valid JSON: unexpected content after document: line 2 column 1 "
        f"(char {body.index(chr(10)) + 1}). It holds one JSON value a line: send JSON Lines as "
        "Content-Type: application/jsonlines (a Batch Transform job's ContentType)."
    )
    assert predict.status_code == 400
    assert "application/jsonlines" not in predict.json()["error"]
    assert "application/jsonlines" not in one_line.json()["error"]


def test_invocations_csv_out(client: TestClient, X: np.ndarray) -> None:
    response = client.post(
        "/invocations", content=_csv(X[:2]), headers={**CSV, "accept": "text/csv"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    expected = model.predict(X[:2])
    assert expected.probabilities is not None
    lines = response.text.splitlines()
    assert len(lines) == 2
    for line, label, proba in zip(lines, expected.labels, expected.probabilities, strict=True):
        fields = line.split(",")
        assert int(fields[0]) == label
        np.testing.assert_allclose([float(f) for f in fields[1:]], proba, rtol=1e-15)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/csv", "text/csv"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/*", "text/csv"),
        ("text/csv;q=0.5, application/json;q=0.9", "application/json"),
        ("application/json;q=0, text/csv", "text/csv"),
    ],
)
def test_invocations_accept_negotiation(
    client: TestClient, X: np.ndarray, accept: str, expected: str
) -> None:
    response = client.post("/invocations", json=X[:1].tolist(), headers={"accept": accept})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(expected)


# SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, as SageMaker's framework containers read it: the answer
# type of a request without Accept (a Batch Transform job whose TransformOutput sets none) or
# with */*; an explicit Accept still wins.
@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/csv"),
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
        ("application/jsonlines", "application/jsonlines"),
    ],
)
def test_invocations_default_accept_answers_requests_without_a_preference(
    make_client: ClientFactory, X: np.ndarray, accept: str | None, expected: str
) -> None:
    client = make_client(default_invocations_accept="text/csv")
    headers = CSV | ({"accept": accept} if accept else {})

    response = client.post("/invocations", content=_csv(X[:3]), headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(expected)
    if expected == "text/csv":
        assert response.text.count("\n") == 3


# Other names clients give JSON Lines (app.transport.JSONLINES_ALIASES): taken as the request's
# Content-Type and as its Accept alike, so a Batch Transform job that sets one alias as both
# its ContentType and its Accept gets JSON Lines back (it got 406 on every request).
@pytest.mark.parametrize(
    "alias", ["application/jsonl", "application/x-jsonlines", "application/x-ndjson"]
)
def test_invocations_json_lines_aliases_in_content_type_and_accept(
    client: TestClient, X: np.ndarray, alias: str
) -> None:
    body = "".join(f"{json.dumps(row)}\n" for row in X[:3].tolist())
    canonical = {"content-type": "application/jsonlines", "accept": "application/jsonlines"}
    expected = client.post("/invocations", content=body, headers=canonical)

    as_input = client.post(
        "/invocations", content=body, headers=canonical | {"content-type": alias}
    )
    as_output = client.post("/invocations", content=body, headers=canonical | {"accept": alias})
    preferred = client.post(
        "/invocations", content=body, headers=canonical | {"accept": f"text/csv;q=0.5, {alias}"}
    )

    assert expected.status_code == 200
    assert expected.text.count("\n") == 3
    for response in (as_input, as_output, preferred):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/jsonlines")
        assert response.text == expected.text


def test_json_lines_alias_accept_is_406_where_json_lines_is_not_answered(
    client: TestClient, X: np.ndarray
) -> None:
    response = client.post(
        "/v1/predict", json=X[:1].tolist(), headers={"accept": "application/x-ndjson"}
    )

    assert response.status_code == 406
    assert "accept application/json." in response.json()["error"]


def test_invocations_unacceptable_accept_is_406(client: TestClient, X: np.ndarray) -> None:
    response = client.post(
        "/invocations", json=X[:1].tolist(), headers={"accept": "application/xml"}
    )

    assert response.status_code == 406
    assert response.json() == {
        "error": "Accept 'application/xml' asks for nothing this route produces; accept "
        "application/json or text/csv or application/jsonlines or application/x-npy."
    }


def test_invocations_csv_header_row_is_skipped(
    client: TestClient, X: np.ndarray, feature_names: list[str]
) -> None:
    with_header = ",".join(feature_names) + "\n" + _csv(X[:2])

    a = client.post("/invocations", content=with_header, headers=CSV).json()
    b = client.post("/invocations", content=_csv(X[:2]), headers=CSV).json()

    assert a == b


def test_invocations_csv_quoted_fields(client: TestClient, X: np.ndarray) -> None:
    quoted = ",".join(f'"{v!r}"' for v in X[0].tolist())

    a = client.post("/invocations", content=quoted, headers=CSV).json()
    b = client.post("/invocations", content=_csv(X[:1]), headers=CSV).json()

    assert a == b


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            "1,2,3\n",
            422,
            "CSV row 0 has 3 columns; the model expects 30 features (mean_radius, mean_texture, "
            "mean_perimeter, mean_area, mean_smoothness, …), in that order, without a header.",
        ),
        (
            "x" + ",1" * 29,
            422,
            "CSV row 0: feature 'mean_radius' is not a number; send numeric rows without a header.",
        ),
        (
            "inf" + ",1" * 29,
            422,
            "feature 'mean_radius' (row 0) is infinite; send finite numbers.",
        ),
        (
            "1" + ",1" * 28 + ",",
            422,
            "feature 'worst_fractal_dimension' (row 0) is missing (null or NaN), but the model "
            "was trained without missing values for it; send a number.",
        ),
        ("\n\n", 400, "The request body is empty; send the rows to predict."),
    ],
)
def test_invocations_bad_csv(client: TestClient, body: str, status: int, message: str) -> None:
    response = client.post("/invocations", content=body, headers=CSV)

    assert response.status_code == status
    assert response.json() == {"error": message}


def test_invocations_csv_not_utf8_is_400(client: TestClient) -> None:
    response = client.post("/invocations", content=b"\xff\xfe1,2", headers=CSV)

    assert response.status_code == 400
    assert response.json() == {"error": "The CSV body is not UTF-8 (invalid start byte at byte 0)."}


def test_invocations_unsupported_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/invocations", content=b"1,2", headers={"content-type": "application/x-protobuf"}
    )

    assert response.status_code == 415
    assert response.json() == {
        "error": "Content-Type 'application/x-protobuf' is not supported here; send "
        "application/json or text/csv or application/jsonlines or application/x-npy."
    }


NPY = {"content-type": "application/x-npy", "accept": "application/x-npy"}
JSON_TYPE = "application/json"


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("fortran", [False, True])
def test_invocations_npy_in_and_out(client: TestClient, X: np.ndarray, fortran: bool) -> None:
    """The SageMaker SDK's SKLearnPredictor sends and asks for NumPy .npy arrays: a 2-D array
    of rows (either memory order) in, the predictions as an array out, as the SageMaker
    scikit-learn container answers."""
    model: Model = client.app.state.service.model  # type: ignore[attr-defined]
    rows = np.asfortranarray(X[:7]) if fortran else np.ascontiguousarray(X[:7])

    response = client.post("/invocations", content=_npy(rows), headers=NPY)
    one_row = client.post("/invocations", content=_npy(X[3]), headers=NPY)
    as_json = client.post("/invocations", content=_npy(rows), headers=NPY | {"accept": "*/*"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    labels = np.load(io.BytesIO(response.content), allow_pickle=False)
    np.testing.assert_array_equal(labels, model.predict(rows).labels)
    np.testing.assert_array_equal(
        np.load(io.BytesIO(one_row.content)), model.predict(X[3:4]).labels
    )
    assert as_json.json()["predictions"] == model.predict(rows).labels.tolist()


class _Armed:
    """Unpickling this object runs code: the service must never do it."""

    ran = False

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_Armed._fire, ())

    @staticmethod
    def _fire() -> None:
        _Armed.ran = True


def test_invocations_npy_object_array_is_refused_unread(client: TestClient) -> None:
    body = _npy(np.array([[_Armed()]], dtype=object), allow_pickle=True)

    response = client.post("/invocations", content=body, headers=NPY)

    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "The .npy body holds Python objects, which the service never unpickles"
    )
    assert not _Armed.ran


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"1,2,3", 400, "The body is not a NumPy .npy array (it does not open with .npy's"),
        (_npy(np.zeros((2, 30)))[:-9], 400, "The body is not a NumPy .npy array ("),
        (_npy(np.zeros((2, 3, 30))), 422, "The .npy array has shape [2, 3, 30]; send [rows, 30]"),
        (_npy(np.zeros((2, 29))), 422, "The .npy array has 29 columns; the model expects 30"),
        (_npy(np.zeros((0, 30))), 422, "the request has no rows"),
        (_npy(np.full((1, 30), np.inf)), 422, "feature 'mean_radius' (row 0) is infinite"),
        (_npy(np.full((2, 30), np.nan)), 422, "feature 'mean_radius' (row 0) is missing"),
        (_npy(np.ones((1, 30), dtype=bool)), 422, "feature 'mean_radius' (row 0) must be a "),
        (_npy(np.full((1, 30), "1.5")), 422, "feature 'mean_radius' (row 0) must be a number"),
        (_npy(np.zeros(2, dtype=[("a", "f8")])), 400, "The .npy body holds a record array"),
    ],
)
def test_invocations_bad_npy_is_named(
    client: TestClient, body: bytes, status: int, error: str
) -> None:
    response = client.post("/invocations", content=body, headers=NPY)

    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()


@settings(max_examples=300, deadline=None)
@example(tail=b"\x00", cut=60)  # a NUL in the header: numpy raises tokenize.TokenError
@given(tail=st.binary(max_size=200), cut=st.integers(0, 200))
def test_invocations_npy_garbage_is_a_client_error(
    client: TestClient, tail: bytes, cut: int
) -> None:
    """Bytes that start like an .npy file and go anywhere never make a 500."""
    body = (_npy(np.zeros((2, 30)))[:cut] + tail) or b"\x93NUMPY"

    response = client.post("/invocations", content=body, headers=NPY)

    assert response.status_code in (200, 400, 422), response.text


@pytest.mark.parametrize("key", ["instances", "instances_é€"])
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_names_null(client: TestClient, X: np.ndarray, token: str, key: str) -> None:
    """Python's json.dumps writes float NaN and infinities as tokens JSON does not have (a
    DataFrame's gaps through the SageMaker SDK's JSON serializers): the 400 says what to
    send instead, in a JSON body and in a JSON Lines line, also after non-ASCII text (orjson
    counts the position in characters, not bytes)."""
    row = json.dumps(X[0].tolist()).replace(repr(float(X[0, 4])), token, 1)
    assert token in row
    body = '{"' + key + '": [' + row + "]}"
    lines = json.dumps(X[1].tolist()) + "\n" + row + "\n"

    as_json = client.post(
        "/invocations", content=body, headers={"content-type": "application/json"}
    )
    as_lines = client.post(
        "/invocations", content=lines, headers={"content-type": "application/jsonlines"}
    )

    hint = "; JSON has no NaN or Infinity: send null for a missing value"
    assert as_json.status_code == as_lines.status_code == 400
    assert hint in as_json.json()["error"]
    assert as_lines.json()["error"].startswith("JSON Lines row 1 is not one JSON value")
    assert hint in as_lines.json()["error"]


@pytest.mark.parametrize(
    ("workers", "body_mib", "concurrent"),
    [(2, 6, 2), (16, 6, 16), (32, 6, 16), (64, 1, 64), (8, 25, 4), (4, 100, 1), (1, 100, 1)],
)
def test_execution_parameters_keep_what_is_in_flight_within_100_mb(
    make_client: ClientFactory, workers: int, body_mib: int, concurrent: int
) -> None:
    """A request per worker, but CreateTransformJob allows at most 100 MB of mini-batches in
    flight per instance (API reference, MaxPayloadInMB: "the value of
    (MaxConcurrentTransforms * MaxPayloadInMB) also cannot exceed 100 MB")."""
    client = make_client(workers=workers, max_body_bytes=body_mib * 1024 * 1024)
    answer = client.get("/execution-parameters").json()
    assert answer == {
        "MaxConcurrentTransforms": concurrent,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": body_mib,
    }
    assert answer["MaxConcurrentTransforms"] * answer["MaxPayloadInMB"] <= 100
