"""Request bodies to a validated float64 matrix, straight from JSON, CSV or a NumPy array to
numpy (JSON Lines: :mod:`app.jsonlines`, which shares the C++ CSV reader below).

This module knows the body shapes (JSON wrappers, CSV, ``.npy``); the value rules live in
:class:`core.features.FeatureSchema`, shared with batch scoring. Messages name the row and the
feature, never echo the value (values must not reach logs).
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from app.errors import BadRequest
from core.errors import InvalidInput
from core.features import (
    CSV_MISSING,
    FeatureSchema,
    flag_values,
    number_values,
    put_numbers,
    text_codes,
)
from core.media import without_bom
from core.npy import NpyError
from core.npy import npy_to_matrix as npy_matrix

# The JSON body shapes accepted besides a bare list of rows or records.
WRAPPER_KEYS = ("features", "instances", "inputs", "records")


def parse_json(body: bytes, lines_media: str | None = None) -> Any:
    """Parse a JSON body (orjson; a leading byte order mark is ignored:
    :func:`core.media.without_bom`), as a 400 naming the position when it is malformed.

    Args:
        lines_media: The media type to name when the body holds one JSON value a line: JSON
            Lines sent as JSON (a Batch Transform job with ``ContentType`` application/json
            and ``SplitType`` Line sends its mini-batches so).
    """
    try:
        return orjson.loads(without_bom(body))
    except orjson.JSONDecodeError as e:
        hint = ""
        if lines_media and str(e).startswith(_SECOND_VALUE) and "column 1 " in str(e):
            hint = (
                " It holds one JSON value a line: send JSON Lines as Content-Type: "
                f"{lines_media} (a Batch Transform job's ContentType)."
            )
        raise BadRequest(f"The body is not valid JSON: {json_reason(e)}.{hint}") from e


def json_reason(e: orjson.JSONDecodeError) -> str:
    """orjson's message, and what to send instead where the value is NaN or Infinity: JSON
    has neither, but Python's ``json.dumps`` writes them (the SageMaker SDK's JSON
    serializers do, for a DataFrame's gaps). ``e.pos`` counts characters of ``e.doc``, the
    decoded text, not bytes."""
    if e.doc[e.pos : e.pos + 8].startswith(("NaN", "Infinity")):
        return f"{e}; JSON has no NaN or Infinity: send null for a missing value"
    return str(e)


_SECOND_VALUE = "unexpected content after document"  # orjson: a value after the first


def json_to_matrix(payload: Any, schema: FeatureSchema) -> np.ndarray:
    """Any accepted JSON shape to a validated matrix.

    Accepted: ``{"features": row | [rows] | record}``, ``{"instances": [rows | records]}``,
    ``{"inputs": [rows | records] | {feature: [values]}}``, ``{"records": [records]}``, a bare
    list of rows or records, or one record.
    """
    if isinstance(payload, list):
        if payload and not isinstance(payload[0], list | dict):
            return schema.validate(schema.rows_to_matrix([payload]))
        return schema.validate(schema.rows_to_matrix(payload))
    if not isinstance(payload, dict):
        raise InvalidInput(_SHAPES)
    keys = [k for k in WRAPPER_KEYS if k in payload]
    if not keys:
        return schema.validate(schema.rows_to_matrix([payload]))  # one named record
    if len(payload) != 1:
        extra = next(k for k in payload if k != keys[0])
        raise InvalidInput(f"Unexpected key {str(extra)[:64]!r} beside {keys[0]!r}. {_SHAPES}")
    key = keys[0]
    value = payload[key]
    where = f"{key}: "
    if key in ("features", "inputs") and isinstance(value, dict):
        if key == "inputs":
            return schema.validate(schema.columns_to_matrix(value, where))
        return schema.validate(schema.rows_to_matrix([value], where))
    if not isinstance(value, list):
        raise InvalidInput(f"{where}expected a list. {_SHAPES}")
    if key == "features" and value and not isinstance(value[0], list | dict):
        return schema.validate(schema.rows_to_matrix([value], where))
    if key == "records" and value and not isinstance(value[0], dict):
        raise InvalidInput(f"{where}expected a list of objects keyed by feature name.")
    if value and not isinstance(value[0], list | dict):
        raise InvalidInput(f"{where}expected a list of rows (lists) or records (objects).")
    return schema.validate(schema.rows_to_matrix(value, where))


_SHAPES = (
    'Send {"features": [numbers]}, {"instances": [[numbers], ...]}, {"inputs": [...]}, '
    "a list of rows, or objects keyed by feature name."
)


def npy_to_matrix(body: bytes, schema: FeatureSchema) -> np.ndarray:
    """A NumPy ``.npy`` body (the SageMaker SDK's ``NumpySerializer``) as a validated matrix,
    by :func:`core.npy.npy_to_matrix`; a body that is not a readable array is a 400."""
    try:
        return npy_matrix(body, schema)
    except NpyError as e:
        raise BadRequest(str(e)) from None


def csv_to_matrix(body: bytes, schema: FeatureSchema) -> np.ndarray:
    """CSV rows without a header (a header equal to the feature names is skipped, and a
    leading byte order mark: :func:`core.media.without_bom`).

    One line is one row, and every row is answered in order (Batch Transform pairs output
    lines with input lines): an empty line inside the body is refused, never skipped, and so
    is a quoted value that holds a line break (:func:`_quoted_rows`). Empty
    fields and null spellings (``NA``, ``null``: :data:`~core.features.CSV_MISSING`) are
    missing values (NaN), accepted only for nullable features. Large bodies are
    parsed in C++ (:func:`_fast_csv`); anything unusual takes the exact path below, which
    words the error.
    """
    body = _skip_header(without_bom(body), schema)
    fast = _fast_csv(body, schema)
    if fast is not None:
        return schema.validate(fast)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"The CSV body is not UTF-8 ({e.reason} at byte {e.start}).") from e
    lines = _lines(text)
    rows = _quoted_rows(lines) if '"' in text else [line.split(",") for line in lines]
    schema.check_count(len(rows), "")
    out = np.empty((len(rows), schema.n), dtype=np.float64)
    for i, row in enumerate(rows):
        if not row or (len(row) == 1 and not row[0].strip()):
            raise InvalidInput(
                f"CSV row {i} is empty; send one row per line, without blank lines (each "
                "output line answers the input line at the same position)."
            )
        if len(row) != schema.n:
            raise InvalidInput(
                f"CSV row {i} has {len(row)} columns; the model expects {schema.expected()}, "
                "in that order, without a header."
            )
        for j, cell in enumerate(row):
            out[i, j] = schema.text_value(cell, i, j, f"CSV row {i}: ")
    return schema.validate(out)


def _quoted_rows(lines: list[str]) -> list[list[str]]:
    """The cells of each line, read by the csv module (quotes, doubled quotes), one row a
    line: a quoted value that holds a line break would make one row of two lines, and every
    later answer would land on the wrong line (Batch Transform also splits records at line
    breaks, so the value could even be cut between two requests)."""
    # strict: an unterminated quote is a malformed body (400), not a short row
    reader = csv.reader(lines, strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if reader.line_num != len(rows) + 1:
                raise InvalidInput(
                    f"CSV row {len(rows)} has a line break inside a quoted value; send each "
                    "row on one line (each output line answers the input line at the same "
                    "position, and Batch Transform splits records at line breaks): remove "
                    "the line breaks from the value or replace them, e.g. with spaces."
                )
            rows.append(row)
    except csv.Error as e:
        raise BadRequest(f"The CSV body cannot be parsed: {e}.") from e
    return rows


# Below this size the Python path is as fast as starting the C++ parser.
FAST_PATH_BYTES = 64 * 1024


def _lines(text: str) -> list[str]:
    """The body's lines: one final line break ends the last row, it does not start one."""
    if text.endswith("\n"):
        text = text[:-1]
    return [line.removesuffix("\r") for line in text.split("\n")] if text else []


def _skip_header(body: bytes, schema: FeatureSchema) -> bytes:
    end = body.find(b"\n")
    first = body if end < 0 else body[:end]
    try:
        names = [c.strip() for c in first.decode("utf-8").rstrip("\r").split(",")]
    except UnicodeDecodeError:
        return body
    if names != schema.names and sorted(names) == sorted(schema.names):
        raise InvalidInput(
            "The CSV header names the model's features in another order; send the columns "
            f"in the model's order ({', '.join(schema.names[:8])}"
            f"{', …' if schema.n > 8 else ''}): a header in that order is skipped."
        )
    return body[end + 1 :] if names == schema.names and end >= 0 else body


def _fast_csv(body: bytes, schema: FeatureSchema) -> np.ndarray | None:
    """A large CSV body parsed by pyarrow's C++ reader, or None to take the exact path (small
    bodies, a blank line, a wrong column count, anything pyarrow does not read as below).

    Each cell comes out as the exact path would read it, tested cell by cell:

    - numbers: pyarrow reads a cell as ``float()`` does (nan, inf, signs, exponents, spaces
      and quotes around a number) or not at all (hex, "_", non-ASCII digits, control
      characters, text), so no character check comes first;
    - text of a categorical feature: trimmed of what ``str.strip()`` trims, then the code of
      that category, or the code of an unseen one;
    - an empty cell or a null spelling (``NA``, ``null``: :data:`CSV_MISSING`): a missing
      value (a padded spelling fails pyarrow's number parse, and the exact path trims it).
      A blank line is not a row of them: the exact path
      refuses it by its number (with a single feature an empty cell is a blank line, so
      there the fast path reads none, and a row with no value at all goes to the exact path).
    """
    if len(body) < FAST_PATH_BYTES:
        return None
    if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
        return None  # pyarrow also ends a line at a lone CR; a row here ends only at LF
    if schema.n == 1 and schema.any_categorical:
        return None  # one text cell a line: an empty one is a blank line (see above)
    X = arrow_csv(body, schema, missing=schema.n > 1)
    if X is not None and b'"' in body and X.shape[0] != _line_count(body):
        return None  # a quoted value holds a line break: the exact path names its row
    return X


def _line_count(body: bytes) -> int:
    """The body's lines (one final line break ends the last one, as in :func:`_lines`).
    numpy counts the breaks of 6 MB in 0.3 ms, ``bytes.count`` in 1.6."""
    if not body:
        return 0
    breaks = int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == _LF))
    return breaks + (0 if body.endswith(b"\n") else 1)


_LF = ord("\n")


def arrow_csv(body: bytes | memoryview, schema: FeatureSchema, missing: bool) -> np.ndarray | None:
    """CSV bytes parsed by pyarrow into the feature matrix (see :func:`_fast_csv`), or None
    when they are not ``schema.n`` readable columns in every row.

    Args:
        missing: Read an empty cell or a null spelling as a missing value (else the parse
            fails on it).
    """
    n = schema.n
    # A boolean feature's CSV cells are read as text too (pandas writes True and False); not
    # the JSON bodies' (missing=False), where true and false go to the exact path, as NaN does.
    flags = schema.boolean & missing
    text = schema.categorical | flags

    def read(nulls: list[str], as_text: np.ndarray = text) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={
                    f"f{j}": pa.string() if as_text[j] else pa.float64() for j in range(n)
                },
                null_values=nulls,
                strings_can_be_null=missing,
                quoted_strings_can_be_null=missing,
            ),
        )

    try:
        try:
            # Empty cells only first: the whole list of spellings costs every parse about a
            # tenth more (6.4 against 7.1 ms for 6 MB). A text column keeps a spelling as
            # text, which text_codes reads as missing.
            table = read([""] if missing else [])
        except pa.ArrowInvalid:
            if not missing:
                raise
            try:
                table = read(sorted(CSV_MISSING))  # a number column holds "NA" or the like
            except pa.ArrowInvalid:
                # pyarrow matches a null spelling untrimmed (a fixed-width export's " NA "):
                # every column as text, each number cell read by number_values
                text = np.ones(n, dtype=bool)
                table = read([], as_text=text)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_columns != n:
        return None
    X = np.empty((table.num_rows, n), dtype=np.float64)  # row-major, as onnxruntime takes it
    for j in range(n):
        column = table.column(j)
        if flags[j]:
            values = flag_values(column)
            if values is None:
                return None
            X[:, j] = values
        elif schema.categorical[j]:
            X[:, j] = text_codes(column, schema.features[j], csv_cell=True)
        elif text[j]:
            values = number_values(column)
            if values is None:
                return None
            X[:, j] = values
        else:
            put_numbers(X[:, j], column)
    # pyarrow reads a blank line as a row of empty cells: a row without any value goes to the
    # exact path, which refuses a blank line by its number (null counts come with the parse)
    nulls = missing and (text.all() or any(table.column(j).null_count for j in range(n)))
    if nulls and np.isnan(X).all(axis=1).any():
        return None
    return X
