"""Request bodies to a validated float64 matrix, straight from JSON or CSV to numpy.

:class:`FeatureSchema` is computed once from the manifest; :meth:`FeatureSchema.validate`
checks a whole batch with vectorised numpy operations and only walks the rows to word the error
when a check fails. Messages name the row and the feature, never echo the value (values must not
reach logs).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from app.errors import BadRequest, InvalidInput
from pipelines.bundle import Manifest

# The JSON body shapes accepted besides a bare list of rows or records.
WRAPPER_KEYS = ("features", "instances", "inputs", "records")
_NUMERIC_KINDS = "fiub"


class FeatureSchema:
    """The model's input columns, as arrays ready for vectorised checks."""

    def __init__(self, manifest: Manifest, max_rows: int) -> None:
        self.features = manifest.features
        self.names = [f.name for f in manifest.features]
        self.n = len(self.names)
        self.max_rows = max_rows
        self._index = {name: i for i, name in enumerate(self.names)}
        self.nullable = np.array([f.nullable for f in self.features], dtype=bool)
        self.integer = np.array([f.dtype == "int64" for f in self.features], dtype=bool)
        self.boolean = np.array([f.dtype == "bool" for f in self.features], dtype=bool)
        self.any_nullable = bool(self.nullable.any())

    def expected(self) -> str:
        """How the expected columns are described in error messages."""
        shown = ", ".join(self.names[:5]) + (", …" if self.n > 5 else "")
        return f"{self.n} features ({shown})"

    # -- shapes -----------------------------------------------------------------------------

    def rows_to_matrix(self, rows: Sequence[Any], where: str = "") -> np.ndarray:
        """A list of rows (lists of numbers) or records (objects keyed by feature name)."""
        self._check_count(len(rows), where)
        if isinstance(rows[0], dict):
            rows = [self._record_values(r, i, where) for i, r in enumerate(rows)]
        try:
            arr = np.array(rows)
        except (ValueError, TypeError):
            arr = None  # ragged or mixed: the slow path below says where
        if (
            arr is None
            or arr.dtype.kind not in _NUMERIC_KINDS
            or arr.ndim != 2
            or _has_bool(rows)  # numpy turns true/false into 1/0 silently
        ):
            arr = self._slow_matrix(rows, where)
        if arr.shape[1] != self.n:
            raise InvalidInput(
                f"{where}row 0 has {arr.shape[1]} values; the model expects {self.expected()}."
            )
        return np.asarray(arr, dtype=np.float64)

    def columns_to_matrix(self, columns: dict[str, Any], where: str = "") -> np.ndarray:
        """An object of columns: ``{"feature": [values, ...], ...}``."""
        self._check_names(columns.keys(), where)
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InvalidInput(
                f"{where}columns must all be lists of the same length, one value per row."
            )
        return self.rows_to_matrix(
            [list(r) for r in zip(*(columns[n] for n in self.names), strict=True)], where
        )

    def _check_count(self, rows: int, where: str) -> None:
        if rows == 0:
            raise InvalidInput(f"{where}the request has no rows; send at least one.")
        if rows > self.max_rows:
            raise InvalidInput(
                f"{where}the request has {rows} rows; at most {self.max_rows} are accepted per "
                "request (MLSHIP_MAX_BATCH_ROWS). Split the batch."
            )

    def _check_names(self, keys: Any, where: str, row: int | None = None) -> None:
        at = f"{where}row {row}: " if row is not None else where
        missing = [n for n in self.names if n not in keys]
        if missing:
            raise InvalidInput(
                f"{at}feature {missing[0]!r} is missing; expected {self.expected()}."
            )
        unknown = [k for k in keys if k not in self._index]
        if unknown:
            raise InvalidInput(
                f"{at}unknown feature {str(unknown[0])[:64]!r}; expected {self.expected()}."
            )

    def _record_values(self, record: Any, i: int, where: str) -> list[Any]:
        if not isinstance(record, dict):
            raise InvalidInput(
                f"{where}row {i} is not an object; send every row as an object keyed by feature "
                "name, or every row as a list of numbers."
            )
        if len(record) != self.n or any(n not in record for n in self.names):
            self._check_names(record.keys(), where, i)
        return [record[n] for n in self.names]

    def _slow_matrix(self, rows: Sequence[Any], where: str) -> np.ndarray:
        out = np.empty((len(rows), self.n), dtype=np.float64)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise InvalidInput(
                    f"{where}row {i} is not a list; send each row as a list of {self.n} numbers "
                    "or as an object keyed by feature name."
                )
            if len(row) != self.n:
                raise InvalidInput(
                    f"{where}row {i} has {len(row)} values; the model expects {self.expected()}."
                )
            for j, value in enumerate(row):
                out[i, j] = self._scalar(value, i, j, where)
        return out

    def _scalar(self, value: Any, i: int, j: int, where: str) -> float:
        if value is None:
            return math.nan
        if isinstance(value, bool) and not self.boolean[j]:
            raise InvalidInput(
                f"{where}feature {self.names[j]!r} (row {i}) must be a number, not true/false."
            )
        if isinstance(value, bool | int | float):
            try:
                return float(value)
            except OverflowError:
                return math.inf  # rejected as infinite by validate()
        raise InvalidInput(
            f"{where}feature {self.names[j]!r} (row {i}) must be a number or null, not "
            f"{_json_type(value)}."
        )

    # -- values -----------------------------------------------------------------------------

    def validate(self, X: np.ndarray) -> np.ndarray:
        """Check a (rows, n) matrix against the schema; returns it unchanged when it passes."""
        self._check_count(X.shape[0], "")
        finite = np.isfinite(X)
        if not finite.all():
            inf = np.isinf(X)
            if inf.any():
                i, j = np.argwhere(inf)[0]
                raise InvalidInput(
                    f"feature {self.names[j]!r} (row {i}) is infinite; send finite numbers."
                )
            nan_not_allowed = np.isnan(X) & ~self.nullable
            if nan_not_allowed.any():
                i, j = np.argwhere(nan_not_allowed)[0]
                raise InvalidInput(
                    f"feature {self.names[j]!r} (row {i}) is missing (null or NaN), but the "
                    "model was trained without missing values for it; send a number."
                )
        if self.integer.any():
            cols = X[:, self.integer]
            bad = (cols != np.round(cols)) & ~np.isnan(cols)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                name = self.names[int(np.flatnonzero(self.integer)[k])]
                raise InvalidInput(f"feature {name!r} (row {i}) must be an integer.")
        if self.boolean.any():
            cols = X[:, self.boolean]
            bad = (cols != 0) & (cols != 1) & ~np.isnan(cols)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                name = self.names[int(np.flatnonzero(self.boolean)[k])]
                raise InvalidInput(f"feature {name!r} (row {i}) must be 0, 1, true or false.")
        return X


def _has_bool(rows: Sequence[Any]) -> bool:
    return any(v is True or v is False for row in rows for v in row)


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "that value"


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
            rows = [r for r in csv.reader(io.StringIO(text)) if r]
        except csv.Error as e:
            raise BadRequest(f"The CSV body cannot be parsed: {e}.") from e
    else:
        rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if rows and [c.strip() for c in rows[0]] == schema.names:
        rows = rows[1:]
    schema._check_count(len(rows), "")
    out = np.empty((len(rows), schema.n), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != schema.n:
            raise InvalidInput(
                f"CSV row {i} has {len(row)} columns; the model expects {schema.expected()}, "
                "in that order, without a header."
            )
        for j, cell in enumerate(row):
            cell = cell.strip()
            if not cell:
                out[i, j] = math.nan
                continue
            try:
                out[i, j] = float(cell)
            except ValueError:
                raise InvalidInput(
                    f"CSV row {i}: feature {schema.names[j]!r} is not a number; send numeric "
                    "rows without a header."
                ) from None
    return schema.validate(out)
