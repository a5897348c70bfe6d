"""Large CSV, JSON Lines and JSON row bodies take a C++ parser (pyarrow); the answer is the
same as the exact Python path's in every case, and anything unusual still gets the exact
path's error."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.answers import csv_lines, jsonlines
from app.errors import BadRequest
from app.inputs import FAST_PATH_BYTES, csv_to_matrix, json_to_matrix, parse_json
from app.jsonlines import (
    _numeric_json,
    _numeric_jsonlines,
    _record_jsonlines,
    json_rows_to_matrix,
    jsonlines_to_matrix,
)
from app.slices import RowSlices
from core.bundle import read_manifest
from core.errors import InvalidInput
from core.features import FeatureSchema
from core.model import Prediction
from tests.app.conftest import test_split


@pytest.fixture(scope="module")
def schema(logistic_bundle: Path) -> FeatureSchema:
    manifest = read_manifest(logistic_bundle)
    features = list(manifest.features)
    features[3] = features[3].model_copy(update={"nullable": True})
    return FeatureSchema(manifest.model_copy(update={"features": features}))


@pytest.fixture(scope="module")
def rows(logistic_bundle: Path) -> np.ndarray:
    base = test_split(logistic_bundle)
    return np.tile(base, (4, 1))  # ~570 rows of 30 values: past the fast-path size


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def slices(request: pytest.FixtureRequest) -> Iterator[RowSlices]:
    """The threads a large JSON Lines body is checked on: one, or two as a worker with two CPUs
    to itself has (the line and number checks then run at once)."""
    threads = RowSlices(request.param)
    yield threads
    threads.close()


def _csv(rows: np.ndarray) -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, rows, fmt="%.6g", delimiter=",")
    return buffer.getvalue()


def test_large_csv_equals_the_exact_path(schema: FeatureSchema, rows: np.ndarray) -> None:
    text = _csv(rows)
    # the same rows, one short enough for the exact path each
    exact = np.vstack([csv_to_matrix(line.encode(), schema) for line in text.splitlines()])

    assert len(text) > FAST_PATH_BYTES
    np.testing.assert_array_equal(csv_to_matrix(text.encode(), schema), exact)
    np.testing.assert_array_equal(csv_to_matrix(text.replace("\n", "\r\n").encode(), schema), exact)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [*lines[:200], "", *lines[200:]], "CSV row 200 is empty; send one row"),
        (lambda lines: [*lines[:7], lines[7].rsplit(",", 1)[0], *lines[8:]], "CSV row 7 has 29"),
        (
            lambda lines: [*lines[:9], "1_000" + lines[9][lines[9].index(",") :], *lines[10:]],
            "CSV row 9: feature 'mean_radius' is not a number",
        ),
    ],
)
def test_large_csv_with_a_bad_line_gets_the_exact_error(
    schema: FeatureSchema, rows: np.ndarray, edit: object, message: str
) -> None:
    lines = edit(_csv(rows).splitlines())  # type: ignore[operator]

    with pytest.raises(InvalidInput, match=f"^{message}"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_large_csv_empty_cell_is_a_missing_value(schema: FeatureSchema, rows: np.ndarray) -> None:
    lines = _csv(rows).splitlines()
    cells = lines[5].split(",")
    cells[3] = ""
    lines[5] = ",".join(cells)

    X = csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)

    assert np.isnan(X[5, 3]) and np.isfinite(np.delete(X.ravel(), 5 * 30 + 3)).all()


def test_large_jsonlines_equals_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, slices: RowSlices
) -> None:
    body = "".join(json.dumps(r) + "\n" for r in rows.tolist()).encode()
    records = "".join(
        json.dumps(dict(zip(schema.names, r, strict=True))) + "\n" for r in rows.tolist()
    ).encode()

    assert len(body) > FAST_PATH_BYTES
    np.testing.assert_array_equal(jsonlines_to_matrix(body, schema, slices), rows)
    np.testing.assert_array_equal(jsonlines_to_matrix(records, schema, slices), rows)


def test_large_jsonlines_nested_lists_are_not_rows(schema: FeatureSchema, rows: np.ndarray) -> None:
    lines = [json.dumps(r) for r in rows.tolist()]
    lines[3] = "[" + lines[3] + "]"

    with pytest.raises(InvalidInput, match=r"^JSON Lines row 3 "):
        jsonlines_to_matrix(("\n".join(lines) + "\n").encode(), schema)


@pytest.mark.parametrize("labels", [np.array([0, 1, 1]), np.array(["Adelie", 'say "hi", ok', "x"])])
def test_csv_and_jsonlines_answers_round_trip_exactly(labels: np.ndarray) -> None:
    proba = np.array([[0.1, 0.9], [1e-17, 1 - 1e-17], [0.3333333333333333, 0.6666666666666667]])
    prediction = Prediction(labels=labels, probabilities=proba)

    csv_rows = list(csv.reader(io.StringIO(csv_lines(prediction).decode())))
    answers = [json.loads(line) for line in jsonlines(prediction).splitlines()]

    assert [r[0] for r in csv_rows] == [str(v) for v in labels.tolist()]
    assert [[float(v) for v in r[1:]] for r in csv_rows] == proba.tolist()
    assert [a["predictions"][0] for a in answers] == labels.tolist()
    assert [a["probabilities"][0] for a in answers] == proba.tolist()


def _nest_second_value(line: str) -> str:
    first, _, rest = line.partition(", ")
    second, _, rest = rest.partition(", ")
    return f"{first}, [{second}], {rest}"


@pytest.mark.parametrize(
    "edit",
    [
        lambda lines: [*lines[:3], lines[3][:-1], "]" + lines[4], *lines[5:]],  # "]" moved
        lambda lines: [*lines[:3], lines[3][1:], "[" + lines[4], *lines[5:]],  # "[" moved
        lambda lines: [*lines[:3], lines[3] + "," + lines[4], *lines[5:]],  # two lists a line
        lambda lines: [*lines[:3], "", *lines[3:]],  # a blank line
        lambda lines: [lines[0][1:], *lines[1:]],  # the first "[" missing
        lambda lines: [*lines[:-1], lines[-1][:-1]],  # the last "]" missing
        lambda lines: [*lines[:3], _nest_second_value(lines[3]), *lines[4:]],  # "[..., [v], ...]"
    ],
)
def test_large_jsonlines_malformed_structure_takes_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, edit: object, slices: RowSlices
) -> None:
    """The fast path only takes bodies of one flat list per line; any other structure gets the
    exact path's answer (an error naming the line), never numbers shifted between rows."""
    lines = edit([json.dumps(r) for r in rows.tolist()])  # type: ignore[operator]
    body = ("\n".join(lines) + "\n").encode()

    with pytest.raises((InvalidInput, BadRequest), match=r"^JSON Lines .*row \d+"):
        jsonlines_to_matrix(body, schema, slices)


# Cells where pyarrow and the exact path's float() could disagree. pyarrow must read each as
# the exact path does, or refuse it so that the exact path answers (with its error).
ODD_CELLS = [
    "nan", "NaN", "inf", "-Infinity", "+1", ".5", "5.", "+.5", "1E+05", "00012", " 1", "1 ",
    "\t1", '"1.5"', "1e-400", "1e400", "0x10", "1_000", "1d5", "true", "--1", "1e", "\x0b1",
    "1\x1f", "\x001", "'1'", "-0",
    "NA", " NA ", '"null"', "None", "<NA>", "-1.#IND",  # null spellings (CSV_MISSING)
    "\u0661\u0662", "\uff11\uff12",  # Arabic-Indic and full-width digits
]  # fmt: skip


@pytest.mark.parametrize("cell", ODD_CELLS)
def test_large_csv_reads_odd_cells_as_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, cell: str
) -> None:
    lines = _csv(rows).splitlines()
    lines[9] = cell + lines[9][lines[9].index(",") :]
    try:
        exact: np.ndarray | str = csv_to_matrix(lines[9].encode(), schema)[0]
    except InvalidInput as e:
        exact = str(e).replace("row 0", "row 9")

    try:
        large: np.ndarray | str = csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)[9]
    except InvalidInput as e:
        large = str(e)

    if isinstance(exact, str):
        assert large == exact
    else:
        np.testing.assert_array_equal(large, exact)


def test_large_csv_lone_carriage_return_is_not_a_line_break(
    schema: FeatureSchema, rows: np.ndarray
) -> None:
    """Batch Transform splits lines at LF only: a CR alone inside a body must not make two rows
    out of one line (every later answer would pair with the wrong input line)."""
    lines = _csv(rows).splitlines()
    lines[9:11] = [lines[9] + "\r" + lines[10]]

    with pytest.raises(InvalidInput, match=r"^CSV row 9 has 59 columns"):
        csv_to_matrix(("\n".join(lines) + "\n").encode(), schema)


# JSON tokens where pyarrow and orjson could disagree: the large body must answer as the exact
# path does. pyarrow reads the numbers JSON's grammar refuses (RFC 8259 section 6: no "+"
# sign, no leading zeros, digits on both sides of "."), so the second row of tokens must be
# refused; the third row is valid JSON that looks like them, and must be read.
ODD_TOKENS = [
    "NaN", "Infinity", "-Infinity", "nan", "inf", '"1.5"', "null", "true", "1e5", "-0", "1E+2",
    "0x10", "1_000", "\x0b1", "[1]", "{}", "1 2", "\t1", "1e400",
    ".5", "5.", "+1", "00012", "+.5", "-.5", "1.e5", "0.", "-00", "01.5", "-01", "1e+-5",
    "0", "10", "100.05", "-0.0", "0.5e-07", "1e05", "1E-05", "1e+20", "-1E-0", "2.000e+010",
]  # fmt: skip


@pytest.mark.parametrize("shape", ["lists", "records"])
@pytest.mark.parametrize("token", ODD_TOKENS)
def test_large_jsonlines_reads_odd_tokens_as_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, token: str, shape: str, slices: RowSlices
) -> None:
    # compact, as Batch Transform clients write it, with the token as the second value: after
    # a comma, where pyarrow's CSV reader would see a quoted field (lists), or as the second
    # feature's value (records, pyarrow's JSON reader)
    if shape == "lists":
        lines = [json.dumps(r, separators=(",", ":")) for r in rows.tolist()]
        start = lines[9].index(",") + 1
    else:
        lines = _records(schema, rows)
        key = f'"{schema.names[1]}":'
        start = lines[9].index(key) + len(key)
    lines[9] = lines[9][:start] + token + lines[9][lines[9].index(",", start) :]

    def answer(body: bytes, row: int) -> np.ndarray | str:
        try:
            return np.asarray(jsonlines_to_matrix(body, schema, slices)[row])
        except (InvalidInput, BadRequest) as e:
            return f"{type(e).__name__}: {e}"

    exact = answer(lines[9].encode(), 0)
    large = answer(("\n".join(lines) + "\n").encode(), 9)

    if isinstance(exact, str):
        assert isinstance(large, str)
        assert large.split(":")[0] == exact.split(":")[0]  # the same error class
        assert "row 9" in large or "row 0" not in exact
    else:
        np.testing.assert_array_equal(large, exact)


def _json_default(value: Any) -> bytes:
    return json.dumps(value).encode()


def _json_compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_WRITERS: dict[str, Callable[[Any], bytes]] = {
    "json": _json_default,
    "json-compact": _json_compact,
    "orjson": orjson.dumps,
}


@settings(max_examples=25, deadline=None)
@given(
    values=hnp.arrays(
        np.float64,
        (600, 30),
        elements=st.floats(allow_nan=False, allow_infinity=False)
        | st.sampled_from([0.0, -0.0, 1e-05, -1e-07, 1e20, 123456789.0, 0.1]),
    ),
    writer=st.sampled_from(sorted(_WRITERS)),
)
@pytest.mark.parametrize("shape", ["JSON Lines", "JSON list"])
def test_large_bodies_of_json_numbers_take_the_fast_path(
    schema: FeatureSchema, values: np.ndarray, writer: str, shape: str
) -> None:
    """Numbers as JSON writers spell them (exponents with leading zeros and signs, -0.0, 1e+20)
    are read by pyarrow, not sent down the exact path, which takes several times longer."""
    rows, dumps = values.tolist(), _WRITERS[writer]
    if shape == "JSON Lines":
        fast = _numeric_jsonlines(b"".join(dumps(r) + b"\n" for r in rows), schema)
    else:
        fast = _numeric_json(dumps(rows), schema)

    assert fast is not None
    np.testing.assert_array_equal(fast, np.array(rows))


def test_large_jsonlines_lone_carriage_return_is_not_a_line_break(
    schema: FeatureSchema, rows: np.ndarray
) -> None:
    """A CR is whitespace to JSON: rows 9 and 10 run together with a CR between them are one
    malformed line (400 naming it), never two rows that shift every later answer."""
    lines = [json.dumps(r) for r in rows.tolist()]
    lines[9:11] = [lines[9][:-1] + "\r" + lines[10][1:]]

    with pytest.raises((InvalidInput, BadRequest), match=r"^JSON Lines row 9"):
        jsonlines_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def _records(schema: FeatureSchema, rows: np.ndarray, compact: bool = True) -> list[str]:
    """One JSON object per row, as pandas' to_json(orient="records", lines=True) writes them
    (compact), or with spaces and the keys in reverse order."""
    records = [dict(zip(schema.names, r, strict=True)) for r in rows.tolist()]
    if compact:
        return [orjson.dumps(r).decode() for r in records]
    return [json.dumps(dict(reversed(list(r.items())))) for r in records]


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_large_jsonlines_records_take_the_fast_path(
    schema: FeatureSchema, rows: np.ndarray, compact: bool, newline: str
) -> None:
    """Records are the JSON Lines most clients write (pandas' records lines); parsed one line
    at a time in Python they took 12-26 times as long as lists (76 against 15 ms for a 6 MB
    body of 5 features)."""
    expected = rows.copy()
    expected[5, 3] = np.nan  # a nullable feature, sent as null
    lines = _records(schema, expected, compact)
    lines[5] = lines[5].replace("NaN", "null")  # json writes NaN, orjson null
    assert "null" in lines[5]
    body = (newline.join(lines) + newline).encode()

    fast = _record_jsonlines(body, schema)

    assert fast is not None
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(jsonlines_to_matrix(body, schema), expected)


def _two_on_a_line(lines: list[str]) -> list[str]:
    # two records on line 3 and a blank line at 8: as many rows as lines, every later row
    # one line off if the counts alone were compared
    return [*lines[:3], lines[3] + " " + lines[4], *lines[5:8], "", *lines[8:]]


def _without(lines: list[str], i: int, key: str) -> list[str]:
    record = orjson.loads(lines[i])
    record.pop(key)
    return [*lines[:i], orjson.dumps(record).decode(), *lines[i + 1 :]]


def _with_null(lines: list[str], i: int, key: str) -> list[str]:
    record = orjson.loads(lines[i])
    record[key] = None
    return [*lines[:i], orjson.dumps(record).decode(), *lines[i + 1 :]]


@pytest.mark.parametrize(
    ("edit", "row"),
    [
        (lambda lines: [*lines[:3], "", *lines[3:]], 3),  # a blank line
        (lambda lines: [*lines[:3], "   ", *lines[3:]], 3),  # a line of spaces
        (_two_on_a_line, 7),  # the exact path names the blank line first
        (lambda lines: [*lines[:3], lines[3] + " " + lines[4], *lines[5:]], 3),  # one row more
        (lambda lines: [*lines[:3], lines[3][:-1] + ',"extra":1}', *lines[4:]], 3),  # unknown
        (lambda lines: [*lines[:3], lines[3][:-1] + ",}", *lines[4:]], 3),  # trailing comma
        (lambda lines: [*lines[:3], "[1, 2]", *lines[4:]], 3),  # a list among records
        (lambda lines: _without(lines, 6, "mean_texture"), 6),  # a key missing
        # a missing key reads as null, like a null elsewhere: each null's line is read again
        (lambda lines: _without(_with_null(lines, 2, "mean_area"), 6, "mean_area"), 6),
        (lambda lines: _with_null(lines, 6, "mean_texture"), 6),  # null, not nullable
    ],
)
def test_large_jsonlines_records_with_a_bad_line_get_the_exact_error(
    schema: FeatureSchema, rows: np.ndarray, edit: object, row: int
) -> None:
    lines = edit(_records(schema, rows))  # type: ignore[operator]

    with pytest.raises((InvalidInput, BadRequest), match=rf"\brow {row}\b"):
        jsonlines_to_matrix(("\n".join(lines) + "\n").encode(), schema)


def test_large_jsonlines_records_the_fast_path_declines_are_read_exactly(
    schema: FeatureSchema, rows: np.ndarray
) -> None:
    """An indented line and a repeated key are valid JSON that pyarrow's reader (or the line
    check) does not take: the exact path reads them (the last of a repeated key counts)."""
    lines = _records(schema, rows)
    lines[3] = " " + lines[3]
    lines[4] = lines[4][:-1] + f',"{schema.names[0]}":1.5}}'
    expected = rows.copy()
    expected[4, 0] = 1.5

    np.testing.assert_array_equal(
        jsonlines_to_matrix(("\n".join(lines) + "\n").encode(), schema), expected
    )


# -- a large JSON list of rows (the SageMaker SDK's JSONSerializer, Batch Transform with
# SplitType None), parsed by pyarrow's CSV reader ------------------------------------------


def _exact_json(body: bytes, schema: FeatureSchema) -> np.ndarray | str:
    """What the exact path (orjson, then json_to_matrix) answers, or its error."""
    try:
        return json_to_matrix(parse_json(body), schema)
    except (InvalidInput, BadRequest) as e:
        return f"{type(e).__name__}: {e}"


def _answer_json(body: bytes, schema: FeatureSchema) -> np.ndarray | str:
    try:
        return json_rows_to_matrix(body, schema)
    except (InvalidInput, BadRequest) as e:
        return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize(
    "write",
    [
        lambda rows: orjson.dumps(rows),
        lambda rows: json.dumps(rows).encode(),  # the SDK's JSONSerializer: ", " separators
        lambda rows: json.dumps(rows, indent=2).encode(),
        lambda rows: json.dumps(rows, indent="\t").replace("\n", "\r\n").encode(),
        lambda rows: orjson.dumps({"instances": rows}),
        lambda rows: b' \n{ "inputs" :\n' + orjson.dumps(rows) + b"\n}\n",
        lambda rows: json.dumps({"features": rows}, indent=1).encode(),
    ],
)
def test_large_json_rows_take_the_fast_path_and_equal_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, write: object
) -> None:
    body = write(rows.tolist())  # type: ignore[operator]

    fast = _numeric_json(body, schema)

    assert len(body) > FAST_PATH_BYTES
    assert fast is not None
    np.testing.assert_array_equal(fast, _exact_json(body, schema))
    np.testing.assert_array_equal(json_rows_to_matrix(body, schema), rows)


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("], [", "], [[", 1).replace("], [", "]], [", 2),  # a nested row
        lambda t: t.replace("], [", "]], [", 1).replace(", ", ", [", 1),  # "[..., [v]]"
        lambda t: t.replace("], [", "], , [", 1),  # two commas between rows
        lambda t: t.replace("], [", "] [", 1),  # no comma between rows
        lambda t: t.replace("], [", "] 5, [", 1),  # a value between rows
        lambda t: t.replace("], [", "], 5 [", 1),
        lambda t: t.replace("], [", "], [], [", 1),  # an empty row
        lambda t: t.replace("], [", ", 7], [", 1),  # a value too many
        lambda t: t.replace("], [", ",], [", 1),  # a trailing comma in a row
        lambda t: t[:-1] + ",]",  # a trailing comma after the last row
        lambda t: t + "[[1]]",  # two lists
        lambda t: t[1:],  # the outer "[" missing
        lambda t: "[" + t,  # one "[" too many
        lambda t: '{"instances": ' + t + ', "extra": 1}',  # a key beside the rows
        lambda t: '{"instances": ' + t + "}}",
        lambda t: '{"records": ' + t + "}",  # records must be objects
        lambda t: '{"features": ' + t,  # the object not closed
    ],
)
def test_large_json_rows_of_another_shape_get_the_exact_answer(
    schema: FeatureSchema, rows: np.ndarray, edit: object
) -> None:
    """Anything but one flat list of rows after another is declined by the fast path and
    answered by the exact path (an error, or the numbers it reads), never shifted rows."""
    body = edit(json.dumps(rows.tolist())).encode()  # type: ignore[operator]

    assert _numeric_json(body, schema) is None
    exact, answer = _exact_json(body, schema), _answer_json(body, schema)
    assert isinstance(exact, str)  # every edit makes a body the exact path refuses
    assert answer == exact


@pytest.mark.parametrize("token", ODD_TOKENS)
def test_large_json_rows_read_odd_tokens_as_the_exact_path(
    schema: FeatureSchema, rows: np.ndarray, token: str
) -> None:
    lines = [json.dumps(r, separators=(",", ":")) for r in rows.tolist()]
    start = lines[9].index(",") + 1
    lines[9] = lines[9][:start] + token + lines[9][lines[9].index(",", start) :]
    body = ("[" + ",".join(lines) + "]").encode()

    exact, answer = _exact_json(body, schema), _answer_json(body, schema)

    if isinstance(exact, str):
        assert answer == exact
    else:
        np.testing.assert_array_equal(answer, exact)
