"""CSV and JSON Lines answers are built a column at a time (app/answers.py); the text is exactly
what encoding each row on its own gives, for every kind of label, and parses back to the
prediction."""

from __future__ import annotations

import csv
import io
import json
import threading

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.answers import AnswerWriter, csv_lines, jsonlines
from app.slices import SLICE_ROWS, RowSlices, request_threads
from core.model import Prediction


def _cell(label: object, numeric: bool) -> bytes:
    if numeric or isinstance(label, float):
        return orjson.dumps(label) if numeric else repr(label).encode()
    text = str(label)
    if any(c in text for c in ',"\r\n') or text != text.strip():
        text = '"' + text.replace('"', '""') + '"'
    return text.encode()


def _row_by_row(prediction: Prediction) -> tuple[bytes, bytes]:
    """The answer bodies encoded one row at a time: the reference."""
    numeric = prediction.labels.dtype.kind in "biuf"
    csv_out, jsonl_out = [], []
    for i, label in enumerate(prediction.labels.tolist()):
        answer: dict[str, object] = {"predictions": [label]}
        cells = [_cell(label, numeric)]
        if prediction.probabilities is not None:
            row = prediction.probabilities[i].tolist()
            cells += [orjson.dumps(p) for p in row]
            answer["probabilities"] = [row]
        csv_out.append(b",".join(cells) + b"\n")
        jsonl_out.append(orjson.dumps(answer) + b"\n")
    return b"".join(csv_out), b"".join(jsonl_out)


_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_TEXT = st.text(alphabet=st.sampled_from(list("ab ,\"\n\r'é€ü;|\\")), min_size=1, max_size=6)


@st.composite
def predictions(draw: st.DrawFn) -> Prediction:
    rows = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["int", "float", "bool", "text", "mixed"]))
    if kind == "int":
        labels = draw(hnp.arrays(np.int64, rows, elements=st.integers(-(2**40), 2**40)))
    elif kind == "float":
        labels = draw(hnp.arrays(np.float64, rows, elements=_FLOATS))
    elif kind == "bool":
        labels = draw(hnp.arrays(np.bool_, rows))
    else:
        classes: list[object] = draw(st.lists(_TEXT, min_size=1, max_size=4, unique=True))
        if kind == "mixed":
            classes = [*classes, 3, 2.5]  # an object array of several types
        labels = np.array([draw(st.sampled_from(classes)) for _ in range(rows)], dtype=object)
    proba = None
    if draw(st.booleans()):
        k = draw(st.integers(1, 4))
        proba = draw(hnp.arrays(np.float64, (rows, k), elements=_FLOATS))
    return Prediction(labels=labels, probabilities=proba)


@settings(max_examples=600, deadline=None)
@example(Prediction(labels=np.array([3, 2.5], dtype=object), probabilities=None))
@example(Prediction(labels=np.array([0.0, -0.0, 0.0]), probabilities=np.full((3, 1), 0.5)))
@given(predictions())
def test_answers_equal_row_by_row_encoding(prediction: Prediction) -> None:
    expected_csv, expected_jsonl = _row_by_row(prediction)

    assert csv_lines(prediction) == expected_csv
    assert jsonlines(prediction) == expected_jsonl


def test_answers_parse_back_to_the_prediction() -> None:
    labels = np.array(["Adelie", 'say "hi", ok', "line\nbreak", "Adelie"])
    proba = np.array([[0.1, 0.9], [1e-17, 1 - 1e-17], [1 / 3, 2 / 3], [1.0, 0.0]])
    prediction = Prediction(labels=labels, probabilities=proba)

    rows = list(csv.reader(io.StringIO(csv_lines(prediction).decode(), newline="")))
    answers = [json.loads(line) for line in jsonlines(prediction).splitlines()]

    assert [r[0] for r in rows] == labels.tolist()
    assert [[float(v) for v in r[1:]] for r in rows] == proba.tolist()
    assert [a["predictions"] for a in answers] == [[v] for v in labels.tolist()]
    assert [a["probabilities"] for a in answers] == [[p] for p in proba.tolist()]


@pytest.mark.parametrize("probabilities", [True, False])
def test_a_csv_label_with_whitespace_at_either_end_survives_a_transform_job(
    probabilities: bool,
) -> None:
    """Batch Transform with AssembleWith=Line strips each mini-batch's answer before its line
    break (as the SageMaker SDK's local mode does: sagemaker/local/entities.py): a label that
    starts or ends with whitespace is quoted, so the first line and the last keep it."""
    labels = np.array([" Adelie", "Chinstrap", "Gentoo\t"])
    proba = np.full((3, 2), 0.5) if probabilities else None
    prediction = Prediction(labels=labels, probabilities=proba)

    assembled = csv_lines(prediction).strip() + b"\n"
    rows = list(csv.reader(io.StringIO(assembled.decode(), newline="")))

    assert [r[0] for r in rows] == labels.tolist()


def test_a_large_answer_is_one_line_per_row() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], 150_000)
    prediction = Prediction(labels=proba.argmax(axis=1), probabilities=proba)

    body = csv_lines(prediction)

    assert body.count(b"\n") == 150_000
    assert body == _row_by_row(prediction)[0]


@pytest.mark.parametrize(
    ("labels", "probabilities"),
    [
        (np.arange(70_000) % 3, np.random.default_rng(1).dirichlet([1, 1, 1], 70_000)),
        (np.array(["no", "yes, sure", 'say "hi"'])[np.arange(70_000) % 3], None),
        (np.random.default_rng(2).normal(size=70_000), None),  # a regressor's values
    ],
    ids=["classes", "text-labels", "regression"],
)
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_an_answer_written_in_slices_is_the_answer_written_whole(
    labels: np.ndarray, probabilities: np.ndarray | None, threads: int
) -> None:
    prediction = Prediction(labels=labels, probabilities=probabilities)
    writer = AnswerWriter(RowSlices(threads))
    try:
        # 70,000 rows: 4 slices (each at least SLICE_ROWS), dealt out to 2, 3 and 4 threads,
        # joined at line ends
        assert writer.csv(prediction) == csv_lines(prediction)
        assert writer.jsonlines(prediction) == jsonlines(prediction)
    finally:
        writer.slices.close()


def test_a_small_answer_is_written_whole_on_the_calling_thread() -> None:
    writer = AnswerWriter(RowSlices(2))
    small = Prediction(labels=np.arange(SLICE_ROWS), probabilities=None)
    try:
        assert writer.csv(small) == csv_lines(small)
        assert not [t for t in threading.enumerate() if t.name.startswith("mlship-slice")]
    finally:
        writer.slices.close()


@pytest.mark.parametrize(
    ("cpus", "workers", "threads"), [(2, 2, 1), (2, 1, 2), (8, 3, 2), (1, 4, 1)]
)
def test_a_worker_writes_answers_on_the_cpus_the_other_workers_leave(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int, threads: int
) -> None:
    monkeypatch.setattr("app.slices.cpus_available", lambda: cpus)
    assert request_threads(workers) == threads
