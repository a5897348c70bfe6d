"""Pure parts of the smoke gate: request bodies, answer parsing, comparison, percentiles."""

from __future__ import annotations

import json
import math

import pytest

from pipelines.release.smoke import compare_golden, parse_predictions, percentile, request_body
from pipelines.release.targets import EndpointError, HttpTarget, InvocationFailed


def test_request_body_is_the_sagemaker_contract_with_nulls() -> None:
    body = json.loads(request_body([[1.5, math.nan], [None, 2.0]]))
    assert body == {"instances": [[1.5, None], [None, 2.0]]}


@pytest.mark.parametrize(
    ("answer", "labels"),
    [
        ({"predictions": [0, 1]}, [0, 1]),
        (
            {"predictions": [{"label": "a"}, {"label": "b", "probabilities": [0.1, 0.9]}]},
            ["a", "b"],
        ),
        ({"predictions": [{"value": 1.5}, {"prediction": 2.5}]}, [1.5, 2.5]),
    ],
)
def test_parse_predictions_accepts_labels_and_objects(answer: object, labels: list[object]) -> None:
    assert parse_predictions(json.dumps(answer).encode(), 2, "x") == labels


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b'{"outputs": []}', "without a 'predictions' list"),
        (b'{"predictions": [1]}', "answered 1 predictions for 2 rows"),
        (b'{"predictions": [{"p": 1}, {"p": 2}]}', "without a label"),
    ],
)
def test_parse_predictions_rejects_other_answers(body: bytes, message: str) -> None:
    with pytest.raises(InvocationFailed, match=message):
        parse_predictions(body, 2, "x")


def test_compare_golden_exact_for_classes_tolerant_for_regression() -> None:
    assert compare_golden([0, 1, 1], [0, 1, 0], regression=False) == ["row 2: expected 1, got 0"]
    assert compare_golden([1], [1.0], regression=False) == []
    assert compare_golden([1], [True], regression=False) == ["row 0: expected 1, got True"]
    assert compare_golden([100.0], [100.000001], regression=True) == []
    assert compare_golden([100.0], [100.1], regression=True) == ["row 0: expected 100.0, got 100.1"]
    assert compare_golden(["cat"], ["dog"], regression=False) == [
        "row 0: expected 'cat', got 'dog'"
    ]


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_http_target_refuses_cleartext_key_off_this_machine() -> None:
    with pytest.raises(EndpointError, match="clear text"):
        HttpTarget("http://example.com", 1.0, api_key="k")
    HttpTarget("http://127.0.0.1:8080", 1.0, api_key="k")
    HttpTarget("https://example.com", 1.0, api_key="k")
    with pytest.raises(EndpointError, match="not an http"):
        HttpTarget("ftp://example.com", 1.0, api_key=None)
