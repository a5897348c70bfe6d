"""JSON Lines request bodies to a validated float64 matrix: one row per line, a list in
feature order or an object keyed by feature name; and large JSON bodies of number rows.

Large bodies of number lists are parsed by pyarrow's CSV reader (:func:`_numeric_jsonlines`),
large bodies of records by its JSON reader (:func:`_record_jsonlines`), and a large JSON list
of number rows (what the SageMaker SDK's JSON serializer sends for an array) by the CSV reader
too (:func:`_numeric_json`); anything any of them reads differently from orjson takes the
exact path, which words the error with the line's or row's number.
"""

from __future__ import annotations

import re

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from app.errors import BadRequest
from app.inputs import FAST_PATH_BYTES, arrow_csv, json_reason, json_to_matrix, parse_json
from app.slices import RowSlices
from core.errors import InvalidInput
from core.features import FeatureSchema, put_numbers, text_codes
from core.media import without_bom


def _numeric_jsonlines(
    body: bytes, schema: FeatureSchema, slices: RowSlices | None = None
) -> np.ndarray | None:
    """Large JSON Lines of plain number lists (``[1.5, 2, -3e-2]`` per line) parsed as CSV by
    pyarrow (JSON numbers are CSV numbers, and the brackets become spaces, which the CSV
    reader skips around a number), or None to take the exact path.

    The exact path (orjson) answers anything that is not a number: a quoted value (pyarrow
    would read ``"1.5"`` as 1.5), and NaN or Infinity, which JSON does not have (pyarrow reads
    them, so a non-finite result goes back), and numbers JSON's grammar refuses but pyarrow
    reads (``.5``, ``+1``, ``007``: :func:`_json_numbers`); every other text fails pyarrow's
    parse.

    The line check and the number check are two scans of the whole body that do not depend on
    each other: on ``slices``' threads they run at once (a 6 MB body of 30-feature rows was
    parsed in 40.1 ms instead of 47.4 on 2 threads, best of 25).
    """
    if len(body) < FAST_PATH_BYTES or b'"' in body:
        return None
    lf = _lf_lines(body)
    if lf is None:
        return None
    # One list per line (_lines_between). These brackets are blanked in a copy; any other
    # bracket (a nested list) stays in a cell, which pyarrow then cannot read.
    chars = np.frombuffer(bytearray(lf), dtype=np.uint8)

    def blank_brackets() -> int:
        """The rows, once their brackets are blanked (0: not one list per line)."""
        lines = _lines_between(chars, _OPEN, _CLOSE)
        if lines is None:
            return 0
        breaks, end = lines
        chars[0] = chars[end - 1] = _SPACE
        chars[breaks - 1] = chars[breaks + 1] = _SPACE
        return int(breaks.size) + 1

    def numbers() -> int:
        """1 when every number is one JSON's grammar allows, else 0. On the body as sent: a
        bracket, like the space it becomes, is neither digit nor sign."""
        return int(_json_numbers(np.frombuffer(lf, dtype=np.uint8)))

    rows, numbers_ok = (slices or RowSlices()).map(lambda check: check(), [blank_brackets, numbers])
    if not (rows and numbers_ok):
        return None
    return _number_lines(chars, rows, schema)


def json_rows_to_matrix(
    body: bytes, schema: FeatureSchema, lines_media: str | None = None
) -> np.ndarray:
    """A JSON body in any shape :func:`~app.inputs.json_to_matrix` takes; a large list of
    number rows is parsed by pyarrow (:func:`_numeric_json`).

    Args:
        lines_media: The JSON Lines media type a route takes, named when the body is JSON
            Lines sent as JSON.
    """
    body = without_bom(body)
    fast = _numeric_json(body, schema)
    if fast is not None:
        return schema.validate(fast)
    return json_to_matrix(parse_json(body, lines_media), schema)


# The wrappers json_to_matrix takes a list of rows in.
_ROWS_WRAPPER = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"(?:instances|inputs|features)"[ \t\r\n]*:')
_JSON_SPACE = b" \t\r\n"


def _numeric_json(body: bytes, schema: FeatureSchema) -> np.ndarray | None:
    """A large JSON list of number lists (``[[1.5, 2], [3, -4e-2]]``, bare or as the value of
    ``instances``, ``inputs`` or ``features``) parsed as CSV by pyarrow, or None to take the
    exact path: orjson builds a Python float per value, and the exact path took 132 ms for
    6 MB of 5-feature rows, where this takes 21-29 ms.

    The outer list's brackets and each row's become spaces and the comma between two rows a
    line break, so each row is one CSV line. Only flat rows qualify: as many ``[`` as ``]``,
    each row's ``]`` before the next row's ``[`` with exactly one comma between them, and no
    quote anywhere in the list. Any other text left between or around the rows joins a cell,
    which pyarrow cannot read; the values follow :func:`_numeric_jsonlines`' rules.
    """
    if len(body) < FAST_PATH_BYTES or schema.any_categorical:
        return None
    wrapper = _ROWS_WRAPPER.match(body)
    text = body[wrapper.end() :] if wrapper else body
    text = text.strip(_JSON_SPACE)
    if wrapper:
        if not text.endswith(b"}"):
            return None
        text = text[:-1].rstrip(_JSON_SPACE)
    if not (text.startswith(b"[") and text.endswith(b"]")) or b'"' in text:
        return None
    chars = np.frombuffer(bytearray(text), dtype=np.uint8)
    chars[(chars == _TAB) | (chars == _CR) | (chars == _NEWLINE)] = _SPACE
    opens, closes = np.flatnonzero(chars == _OPEN), np.flatnonzero(chars == _CLOSE)
    if opens.size < 2 or opens.size != closes.size:
        return None
    starts, ends = opens[1:], closes[:-1]  # each row's brackets, inside the outer pair
    if not ((starts < ends).all() and (ends[:-1] < starts[1:]).all()):
        return None  # not one flat row after another
    commas = np.flatnonzero(chars == _COMMA)
    between = np.searchsorted(commas, ends[:-1])  # the first comma after each row but the last
    if between.size and (between[-1] >= commas.size):
        return None
    separators = commas[between]
    following = np.append(commas, chars.size)[between + 1]
    if (separators > starts[1:]).any() or (following < starts[1:]).any():
        return None  # no comma between two rows, or more than one
    chars[opens] = chars[closes] = _SPACE
    chars[separators] = _NEWLINE
    if not _json_numbers(chars):
        return None
    return _number_lines(chars, starts.size, schema)


def _number_lines(chars: np.ndarray, rows: int, schema: FeatureSchema) -> np.ndarray | None:
    """JSON numbers made into ``rows`` CSV lines (brackets blanked, a row a line, every number
    one JSON's grammar allows: :func:`_json_numbers`) read by pyarrow, or None unless every
    line is a row of ``schema.n`` numbers and each is finite (pyarrow reads NaN and Infinity,
    which JSON does not have)."""
    X = arrow_csv(chars.data, schema, missing=False)
    if X is None or X.shape[0] != rows or not np.isfinite(X).all():
        return None
    return X


def _record_jsonlines(body: bytes, schema: FeatureSchema) -> np.ndarray | None:
    """Large JSON Lines of records (one object keyed by feature name per line, as pandas'
    ``to_json(orient="records", lines=True)`` writes them) parsed by pyarrow's JSON reader,
    or None to take the exact path.

    pyarrow's reader follows JSON's grammar (``007``, ``.5``, ``+1`` and trailing commas
    fail, tested), and with each feature's type declared it fails on an unknown key, a
    repeated key, a value of another JSON type (text for a number, ``true``, a list) and a
    line that is not an object, so the exact path words each of those. What it reads that
    the exact path does not: NaN and Infinity, so a non-finite number goes back; and a
    missing key reads as null, so the lines holding a null are read again one at a time
    (usually few) and any missing key goes back.
    """
    if len(body) < FAST_PATH_BYTES:
        return None
    lf = _lf_lines(body)
    if lf is None:
        return None
    chars = np.frombuffer(lf, dtype=np.uint8)
    lines = _lines_between(chars, _OPEN_BRACE, _CLOSE_BRACE)
    if lines is None:
        return None
    breaks, end = lines
    # pandas writes a bool column as JSON's true and false: a boolean feature reads them (a 1
    # or 0 there fails this parse and takes the exact path, which reads those too)
    types = [
        pa.string() if text else pa.bool_() if flag else pa.float64()
        for text, flag in zip(schema.categorical, schema.boolean, strict=True)
    ]
    try:
        table = pajson.read_json(
            pa.BufferReader(pa.py_buffer(lf)),
            parse_options=pajson.ParseOptions(
                explicit_schema=pa.schema(list(zip(schema.names, types, strict=True))),
                unexpected_field_behavior="error",
                newlines_in_values=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):  # ValueError: not UTF-8
        return None
    if table.num_rows != breaks.size + 1:
        return None  # two objects on a line (every line holds one or more, none is blank)
    X = np.empty((table.num_rows, schema.n), dtype=np.float64)
    nulls = np.zeros(table.num_rows, dtype=bool)
    for j, (name, spec) in enumerate(zip(schema.names, schema.features, strict=True)):
        column = table.column(name)
        if schema.categorical[j]:
            X[:, j] = text_codes(column, spec, csv_cell=False)
        elif schema.boolean[j]:
            put_numbers(X[:, j], column)  # True and False as 1.0 and 0.0
        else:
            if not pc.all(pc.is_finite(column)).as_py():  # skips nulls
                return None
            put_numbers(X[:, j], column)
        if column.null_count:
            nulls |= pc.is_null(column).to_numpy(zero_copy_only=False)
    starts = np.concatenate(([0], breaks + 1))
    stops = np.concatenate((breaks, [end]))
    for i in np.flatnonzero(nulls):
        try:
            record = orjson.loads(lf[starts[i] : stops[i]])
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict) or any(name not in record for name in schema.names):
            return None
    return X


def _lf_lines(body: bytes) -> bytes | None:
    """The body with CRLF line ends as LF, or None when a CR stands alone (pyarrow would end
    a line there; a row here ends only at LF)."""
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
        if b"\r" in body:
            return None
    return body


def _lines_between(chars: np.ndarray, first: int, last: int) -> tuple[np.ndarray, int] | None:
    """The line breaks of a body of one value per line, and where its last line ends, or
    None unless the body opens with ``first`` and closes with ``last`` and every line break
    sits between ``last`` and ``first`` (so no line is blank, and none starts or ends with
    anything else)."""
    end = chars.size - 1 if chars[-1] == _NEWLINE else chars.size  # a final break ends a row
    if end == 0 or chars[0] != first or chars[end - 1] != last:
        return None
    breaks = np.flatnonzero(chars[:end] == _NEWLINE)
    if (chars[breaks - 1] != last).any() or (chars[breaks + 1] != first).any():
        return None
    return breaks, end


_NEWLINE, _OPEN, _CLOSE, _SPACE = ord("\n"), ord("["), ord("]"), ord(" ")
_TAB, _CR, _COMMA = ord("\t"), ord("\r"), ord(",")
_OPEN_BRACE, _CLOSE_BRACE = ord("{"), ord("}")
_DOT, _PLUS, _MINUS, _ZERO = ord("."), ord("+"), ord("-"), ord("0")


def _json_numbers(chars: np.ndarray) -> bool:
    """False when a number in these blanked JSON Lines bytes (no digit at either end) is one
    that pyarrow reads but JSON's grammar refuses: ``.5``, ``5.``, ``1.e5``, ``+1`` or a
    leading zero (``007``, ``-01``); exponents keep theirs (``1e-05``). Text pyarrow cannot
    read fails its parse, and non-finite values the caller's check.

    Each rule is a few whole-array comparisons, run a cache-sized block at a time (about
    1.9 ms for a 6 MB body, against 2.7 ms over the whole array at once)."""
    for start in range(1, chars.size - 1, _CHECK_BLOCK):
        stop = min(start + _CHECK_BLOCK, chars.size - 1)
        if not _json_numbers_in(chars, start, stop):
            return False
    return True


_CHECK_BLOCK = 256 * 1024


def _json_numbers_in(chars: np.ndarray, start: int, stop: int) -> bool:
    """:func:`_json_numbers` for the bytes ``chars[start:stop]`` (0 < start, stop < size)."""
    window = chars[start - 1 : stop + 1]
    digit = (window - _ZERO) < 10  # uint8 arithmetic: anything below "0" wraps above 9
    dot = window == _DOT
    digit_before, digit_after = digit[:-2], digit[2:]
    # "." only between digits
    if np.greater(dot[1:-1], digit_before & digit_after).any():
        return False
    # "+" only after an exponent's "e" (Python's json writes 1e+20)
    plus = window[1:-1] == _PLUS
    if plus.any() and not _is_e(window[:-2][plus]).all():
        return False
    # a "0" followed by a digit, after neither a digit nor "." (a number's first digit, or an
    # exponent's): kept only when an exponent's "e", "e+" or "e-" precedes it
    zeros = np.greater((window[1:-1] == _ZERO) & digit_after, digit_before | dot[:-2])
    if not zeros.any():
        return True
    at = np.flatnonzero(zeros) + start  # positions in chars; chars[at - 2] is at worst chars[-1]
    sign = (chars[at - 1] == _PLUS) | (chars[at - 1] == _MINUS)
    return bool((_is_e(chars[at - 1]) | (sign & _is_e(chars[at - 2]))).all())


def _is_e(chars: np.ndarray) -> np.ndarray:
    lower: np.ndarray = (chars | 0x20) == ord("e")  # "e" or "E": no other byte gives "e"
    return lower


def jsonlines_to_matrix(
    body: bytes, schema: FeatureSchema, slices: RowSlices | None = None
) -> np.ndarray:
    """JSON Lines: one row per line, a list in feature order or an object keyed by feature
    name. Empty lines are refused like in CSV (each output line answers its input line); a
    leading byte order mark is ignored (:func:`core.media.without_bom`).

    Args:
        slices: The threads a large body of number lists is checked on (one by default).
    """
    body = without_bom(body)
    if body.startswith(b"{"):
        fast = _record_jsonlines(body, schema)
    elif not schema.any_categorical:
        fast = _numeric_jsonlines(body, schema, slices)
    else:
        fast = None
    if fast is not None:
        return schema.validate(fast)
    text_lines = body.split(b"\n")
    if text_lines and not text_lines[-1].strip():
        text_lines.pop()  # the final line break
    for i, line in enumerate(text_lines):
        if not line.strip():
            raise InvalidInput(
                f"JSON Lines row {i} is empty; send one JSON row per line, without blank "
                "lines (each output line answers the input line at the same position)."
            )
    if not text_lines:
        raise BadRequest("The request body is empty; send the rows to predict.")
    try:
        # All lines at once; a line that is not exactly one JSON value (``[1],[2]``, ``1, 2``)
        # either breaks the parse or adds elements, and is then named one line at a time.
        rows = orjson.loads(b"[" + b",".join(text_lines) + b"]")
        one_value_a_line = len(rows) == len(text_lines)
    except orjson.JSONDecodeError:
        one_value_a_line = False
    if not one_value_a_line:
        for i, line in enumerate(text_lines):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise BadRequest(
                    f"JSON Lines row {i} is not one JSON value: {json_reason(e)}. Send one "
                    "row per line."
                ) from e
        raise BadRequest("The body is not JSON Lines; send one JSON row per line.")
    if not isinstance(rows[0], list | dict):
        raise InvalidInput(
            "JSON Lines row 0 is not a row; send each row as a list in feature order or an "
            "object keyed by feature name."
        )
    return schema.validate(schema.rows_to_matrix(rows, "JSON Lines "))
