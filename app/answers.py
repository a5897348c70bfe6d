"""Prediction answers as CSV or JSON Lines bodies: one line per row, built a column at a time
(and as a NumPy array: :func:`npy_answer`).

A Batch Transform mini-batch holds up to ~150,000 rows; building each answer line in Python
(a few bytes objects and a join per row) cost more than parsing and predicting the rows
together. Here orjson writes the numbers a whole column (or the probability matrix) at a time,
numpy finds where each row's text ends and writes the line's next separator there, and
pyarrow's element-wise join assembles the lines in C++. The text is the same as per-row
encoding would give (tested against it):

- CSV: the label, then the class probabilities for classifiers (``1,0.02,0.98``); numbers
  are JSON numbers (orjson's shortest round trip), text labels are quoted only when they
  must be (RFC 4180) or start or end with whitespace (:func:`_csv_cell`).
- JSON Lines: the JSON answer that row alone would get,
  ``{"predictions":[label],"probabilities":[[p, ...]]}``.

Every line stands alone, so a large answer is written in row slices on several threads by
:class:`AnswerWriter` (``app/slices.py``) and the slices' bytes are joined: numpy and pyarrow
run without the GIL (orjson holds it), and a 146,000-row CSV answer took 16.4 ms in one piece,
8.0 ms in 2 slices on 2 threads (:data:`SLICES_PER_THREAD` says why there are more slices
than threads).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from app.batching import split_prediction
from app.slices import RowSlices
from core.model import Prediction

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_COMMA = ord(",")


# orjson holds the GIL while it writes a slice's numbers, and then the slice's offsets and
# join run without it: in 3 slices per thread, dealt out in turn, one thread's orjson can run
# while the other's numpy and pyarrow work does. A 146,114-row JSON Lines answer on 2 threads
# took 27.1 ms in 2 slices and 24.2 in 6 (best of 30, alternated); CSV 21.4 and 21.3.
SLICES_PER_THREAD = 3


class AnswerWriter:
    """Writes CSV and JSON Lines answers, a large one in row slices on ``slices``' threads;
    the bytes are those of one piece."""

    def __init__(self, slices: RowSlices | None = None) -> None:
        self.slices = slices or RowSlices()

    def csv(self, prediction: Prediction) -> bytes:
        """:func:`csv_lines` of ``prediction``."""
        return self._write(csv_lines, prediction)

    def jsonlines(self, prediction: Prediction) -> bytes:
        """:func:`jsonlines` of ``prediction``."""
        return self._write(jsonlines, prediction)

    def _write(self, write: Callable[[Prediction], bytes], prediction: Prediction) -> bytes:
        sizes = self.slices.sizes(len(prediction), per_thread=SLICES_PER_THREAD)
        if len(sizes) < 2:
            return write(prediction)
        return b"".join(self.slices.map(write, split_prediction(prediction, sizes)))


def csv_lines(prediction: Prediction) -> bytes:
    """One CSV line per row: the label, then the class probabilities for classifiers."""
    if len(prediction) == 0:
        return b""
    if prediction.probabilities is None:
        return _join([_labels(prediction.labels, _csv_cell, b"\n")])
    labels = _labels(prediction.labels, _csv_cell, b",")
    return _join([labels, _number_rows(prediction.probabilities, b"\n")])


def jsonlines(prediction: Prediction) -> bytes:
    """One JSON object per row: the answer that row alone would get."""
    if len(prediction) == 0:
        return b""
    if prediction.probabilities is None:
        labels = _labels(prediction.labels, _json_text, b"]")
        return _join(['{"predictions":[', labels, "}\n"])
    # Each row's text up to its probabilities, after the previous row's end: two arrays to
    # join instead of five parts (2.4 against 4.9 ms for 146,000 rows). The first row's
    # extra end is skipped, and the last row's probabilities carry the body's end.
    heads = _each_label(
        prediction.labels,
        lambda label: _END + b'{"predictions":[' + _json_text(label) + b'],"probabilities":[[',
    )
    probabilities = _number_rows(prediction.probabilities, b"]", tail=_END)
    return _join([heads, probabilities], skip=len(_END))


_END = b"]}\n"  # a JSON Lines answer's last bytes (after a classifier's probabilities)


def _labels(labels: np.ndarray, text: Callable[[Any], bytes], end: bytes) -> pa.Array:
    """Each label's text followed by ``end``: numbers as JSON numbers (orjson, a column at a
    time), anything else through ``text`` once per distinct label."""
    if labels.dtype.kind in "biuf":
        return _tokens(labels, 1, end)
    return _each_label(labels, lambda label: text(label) + end)


def _each_label(labels: np.ndarray, text: Callable[[Any], bytes]) -> pa.Array:
    """``text`` of each row's label, called once per distinct label (a classifier's few
    classes) and repeated in C++."""
    if labels.dtype.kind in "biuf":
        # distinct bit patterns, so that -0.0 keeps its own text beside 0.0; pyarrow's hash
        # finds them in 0.9 ms for 146,000 rows, numpy's sort (np.unique) took 3.8
        bits = np.ascontiguousarray(labels).view(f"u{labels.dtype.itemsize}")
        distinct = pa.array(bits).dictionary_encode()
        values = distinct.dictionary.to_numpy().view(labels.dtype)
        encoded = [text(label) for label in values.tolist()]
        return pa.array(encoded, pa.large_binary()).take(distinct.indices)
    values = labels.tolist()
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types
        array = None
    if array is None or not pa.types.is_string(array.type):
        # Only text is encoded once per distinct label: pyarrow would make 3 in [3, 2.5] a 3.0.
        return pa.array([text(v) for v in values], pa.large_binary())
    dictionary = array.dictionary_encode()
    encoded = [text(v) for v in dictionary.dictionary.to_pylist()]
    return pa.array(encoded, pa.large_binary()).take(dictionary.indices)


def _number_rows(matrix: np.ndarray, end: bytes, tail: bytes = b"") -> pa.Array:
    """A 2-D numeric array as one ``a,b,c`` text per row, each followed by ``end`` (the last
    one by ``end`` and ``tail``)."""
    return _tokens(matrix, matrix.shape[1], end, tail)


def _tokens(values: np.ndarray, per: int, end: bytes, tail: bytes = b"") -> pa.Array:
    """The values in row-major order as JSON numbers (orjson, one call), grouped ``per`` to a
    text that ends with the one byte ``end``: ``[a,b,c,d]`` with ``per=2`` and ``end=b";"``
    gives ``a,b;`` and ``c,d;``. Each group's separator (or the final ``]``) is overwritten
    with ``end`` in a copy of orjson's output, ``tail`` follows the last group, and the texts
    point into that copy."""
    text = orjson.dumps(np.ascontiguousarray(values).ravel(), option=_NUMPY)
    chars = np.empty(len(text) + len(tail), dtype=np.uint8)
    chars[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    chars[len(text) :] = np.frombuffer(tail, dtype=np.uint8)
    ends = np.flatnonzero(chars[: len(text)] == _COMMA)[per - 1 :: per]  # between groups
    chars[ends] = chars[len(text) - 1] = ord(end)
    offsets = np.empty(ends.size + 2, dtype=np.int64)
    offsets[0] = 1  # after "["
    offsets[1:-1] = ends + 1
    offsets[-1] = chars.size
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    return pa.Array.from_buffers(pa.large_binary(), ends.size + 1, buffers)


def _join(parts: list[pa.Array | str], skip: int = 0) -> bytes:
    """The rows' lines, each the concatenation of ``parts`` (arrays per row, or constant
    text), as one body, less its first ``skip`` bytes."""
    values = [pa.scalar(p.encode(), pa.large_binary()) if isinstance(p, str) else p for p in parts]
    if len(values) == 1:
        lines = values[0]
    else:
        lines = pc.binary_join_element_wise(*values, pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, stop = int(offsets[lines.offset]) + skip, int(offsets[lines.offset + len(lines)])
    data = lines.buffers()[2]
    return b"" if data is None else data.slice(start, stop - start).to_pybytes()


def npy_answer(prediction: Prediction) -> bytes:
    """The predictions as a NumPy ``.npy`` array, as the SageMaker scikit-learn container
    answers ``application/x-npy`` (the labels only): numbers as they are, text labels as a
    unicode array, never an object array (its reader would have to unpickle it)."""
    labels = prediction.labels
    if labels.dtype.kind not in "biuf":
        labels = np.array([str(v) for v in labels.tolist()], dtype=np.str_)
    buffer = io.BytesIO()
    np.save(buffer, labels, allow_pickle=False)
    return buffer.getvalue()


def _csv_cell(value: object) -> bytes:
    """A text label as a CSV field, quoted when it must be (RFC 4180) and when it starts or
    ends with whitespace, which a Batch Transform job strips from each mini-batch's answer
    (as the SageMaker SDK's local mode does) and readers may trim; floats round-trip."""
    if isinstance(value, float):
        return repr(value).encode()
    text = str(value)
    if any(c in text for c in ',"\r\n') or text != text.strip():
        text = '"' + text.replace('"', '""') + '"'
    return text.encode()


def _json_text(value: object) -> bytes:
    return orjson.dumps(value)
