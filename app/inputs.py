"""Request bodies to a validated float64 matrix, straight from JSON or CSV to numpy.

This module knows the body shapes (JSON wrappers, CSV); the value rules live in
:class:`core.features.FeatureSchema`, shared with batch scoring. Messages name the row and the
feature, never echo the value (values must not reach logs).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson

from app.errors import BadRequest
from core.errors import InvalidInput
from core.features import FeatureSchema

# The JSON body shapes accepted besides a bare list of rows or records.
WRAPPER_KEYS = ("features", "instances", "inputs", "records")


def parse_json(body: bytes) -> Any:
    """Parse a JSON body (orjson), as a 400 naming the position when it is malformed."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"The body is not valid JSON: {e}.") from e


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


def csv_to_matrix(body: bytes, schema: FeatureSchema) -> np.ndarray:
    """CSV rows without a header (a header equal to the feature names is skipped).

    Empty fields are missing values (NaN), accepted only for nullable features.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadRequest(f"The CSV body is not UTF-8 ({e.reason} at byte {e.start}).") from e
    if '"' in text:
        try:
            # strict: an unterminated quote is a malformed body (400), not a short row
            rows = [r for r in csv.reader(io.StringIO(text), strict=True) if r]
        except csv.Error as e:
            raise BadRequest(f"The CSV body cannot be parsed: {e}.") from e
    else:
        rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if rows and [c.strip() for c in rows[0]] == schema.names:
        rows = rows[1:]
    schema.check_count(len(rows), "")
    out = np.empty((len(rows), schema.n), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != schema.n:
            raise InvalidInput(
                f"CSV row {i} has {len(row)} columns; the model expects {schema.expected()}, "
                "in that order, without a header."
            )
        for j, cell in enumerate(row):
            out[i, j] = schema.text_value(cell, i, j, f"CSV row {i}: ")
    return schema.validate(out)
