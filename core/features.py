"""The feature-value rules: one check of input rows against the bundle's schema.

Categorical features take text; the model sees each value as a number, its code: the
position of the value in ``FeatureSpec.categories`` (0 .. k-1), or k for any other value (the
'other' bucket when training capped the categories, else a value never seen in training). A
missing value is NaN. :func:`category_codes` is that one mapping, used by training, serving
and batch scoring alike.

The service (every body shape, JSON or CSV) and batch scoring (``mlship predict``) both turn
their input into a float64 matrix and call :meth:`FeatureSchema.validate`, so a value one of
them refuses the other refuses too, with the same message. Checks are vectorised numpy
operations; the rows are only walked to word the error when a check fails. Messages name the
row and the feature and never echo the value (values must not reach logs).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.manifest import FeatureSpec, Manifest

_NUMERIC_KINDS = "fiub"
# Rows of JSON values are converted a column at a time from this many rows (below, cell by
# cell costs less: 8 against 62 us for one 7-feature row, 85 against 60 for 16).
_COLUMN_ROWS = 32
# The JSON value types a column may hold to be converted a column at a time (exact types:
# bool, a subclass of int, is refused or read by the cell rule, never here).
_CATEGORY_VALUES = frozenset({str, int, type(None)})
_NUMBER_VALUES = frozenset({int, float, type(None)})

# The CSV cells that mean "no value": the spellings pandas reads as missing by default, and
# training reads CSV files with pandas (pipelines/data.py passes this list). The endpoint and
# `mlship predict` read a CSV cell by the same list (trimmed first, as every CSV cell is), so
# an R export's "NA" is a missing value everywhere, never a number error at the endpoint or a
# never-seen category where training saw a gap. Tested equal to pandas' own list.
CSV_MISSING: frozenset[str] = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip

# A boolean feature's CSV cells, as pandas reads a column of them in training (``True`` and
# ``False`` as ``to_csv`` writes them, in any case: tested against pandas); 1 and 0 are read
# as numbers. Trimmed first, as every CSV cell is.
BOOLEAN_CELLS: dict[str, float] = {"true": 1.0, "false": 0.0}


class FeatureSchema:
    """The model's input columns, as arrays ready for vectorised checks."""

    def __init__(
        self, manifest: Manifest, max_rows: int | None = None, refuse_unseen: bool = False
    ) -> None:
        """
        Args:
            manifest: The bundle's manifest.
            max_rows: Most rows one request may carry (None: no limit, batch scoring).
            refuse_unseen: Refuse a categorical value outside the known categories (422)
                instead of passing it to the model (which learnt to ignore it).
        """
        self.features = manifest.features
        self.names = [f.name for f in manifest.features]
        self.n = len(self.names)
        self.max_rows = max_rows
        self.refuse_unseen = refuse_unseen
        self._index = {name: i for i, name in enumerate(self.names)}
        self.nullable = np.array([f.nullable for f in self.features], dtype=bool)
        self.integer = np.array([f.dtype == "int64" for f in self.features], dtype=bool)
        self.boolean = np.array([f.dtype == "bool" for f in self.features], dtype=bool)
        self.categorical = np.array([f.is_categorical for f in self.features], dtype=bool)
        self.any_categorical = bool(self.categorical.any())
        self.codes: list[dict[str, float] | None] = [
            category_index(f) if f.is_categorical else None for f in self.features
        ]
        # The code of a value outside the known categories, per feature (NaN: not categorical).
        self.outside = np.array(
            [len(f.categories or []) if f.is_categorical else np.nan for f in self.features]
        )
        self.any_nullable = bool(self.nullable.any())

    def expected(self) -> str:
        """How the expected columns are described in error messages."""
        shown = ", ".join(self.names[:5]) + (", …" if self.n > 5 else "")
        return f"{self.n} features ({shown})"

    # -- shapes -----------------------------------------------------------------------------

    def rows_to_matrix(self, rows: Sequence[Any], where: str = "") -> np.ndarray:
        """A list of rows (lists of numbers) or records (objects keyed by feature name)."""
        self.check_count(len(rows), where)
        if isinstance(rows[0], dict):
            rows = [self._record_values(r, i, where) for i, r in enumerate(rows)]
        arr = None  # ragged, mixed or with text: the paths below convert it or say where
        if not self.any_categorical:  # (numpy would make text of every number, then no use)
            with contextlib.suppress(ValueError, TypeError):
                arr = np.array(rows)
        if (
            arr is None
            or arr.dtype.kind not in _NUMERIC_KINDS
            or arr.ndim != 2
            or _has_bool(rows)  # numpy turns true/false into 1/0 silently
        ):
            arr = self._column_matrix(rows) if len(rows) >= _COLUMN_ROWS else None
            if arr is None:
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

    def check_count(self, rows: int, where: str) -> None:
        if rows == 0:
            raise InvalidInput(f"{where}the request has no rows; send at least one.")
        if self.max_rows is not None and rows > self.max_rows:
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

    def text_value(self, cell: str, i: int, j: int, where: str) -> float:
        """A CSV cell's value: a category's code, or a number; empty or a null spelling
        (:data:`CSV_MISSING`) is missing.

        Raises:
            InvalidInput: when a number is expected and ``cell`` is not one.
        """
        cell = cell.strip()
        if cell in CSV_MISSING:
            return math.nan
        codes = self.codes[j]
        if codes is not None:
            return codes.get(cell, float(self.outside[j]))
        if self.boolean[j]:
            flag = BOOLEAN_CELLS.get(cell.lower())
            if flag is not None:
                return flag
        # float() also reads "1_000" and non-ASCII digits (Arabic-Indic, full-width); a
        # number in text is ASCII.
        try:
            if not cell.isascii() or "_" in cell:
                raise ValueError(cell)  # noqa: TRY301 - the same refusal as float()'s
            return float(cell)
        except ValueError:
            if self.boolean[j]:
                raise InvalidInput(
                    f"{where}feature {self.names[j]!r} must be true, false, 1 or 0."
                ) from None
            raise InvalidInput(
                f"{where}feature {self.names[j]!r} is not a number; send numeric "
                "rows without a header."
            ) from None

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

    def _column_matrix(self, rows: Sequence[Any]) -> np.ndarray | None:
        """The matrix :meth:`_slow_matrix` makes of ``rows``, built a column at a time (a
        table with text columns, sent as JSON lists, cost 5.6 us a row cell by cell), or None
        when a row is not a list of ``n`` values or a column holds anything :meth:`_scalar`
        may refuse or reads by a rarer rule (true/false, a number too large for a float):
        the cell-by-cell path then converts the rows or names the offending one."""
        n = self.n
        if not all(type(row) is list and len(row) == n for row in rows):
            return None
        out = np.empty((len(rows), n), dtype=np.float64)
        for j, column in enumerate(zip(*rows, strict=True)):
            kinds = set(map(type, column))
            codes = self.codes[j]
            if codes is not None:
                if not kinds <= _CATEGORY_VALUES:
                    return None
                other = float(self.outside[j])
                code = {
                    v: math.nan if missing_value(v) else codes.get(category_text(v), other)
                    for v in set(column)  # no bool here: text and int are never equal
                }
                out[:, j] = np.fromiter(map(code.__getitem__, column), np.float64, len(column))
                continue
            if not kinds <= _NUMBER_VALUES:
                return None
            values = np.array(column, dtype=object)
            if type(None) in kinds:
                values[values == None] = math.nan  # noqa: E711 - element-wise, on objects
            try:
                out[:, j] = values.astype(np.float64)  # float() of each value, as _scalar
            except OverflowError:
                return None
        return out

    def _scalar(self, value: Any, i: int, j: int, where: str) -> float:
        if value is None:
            return math.nan
        codes = self.codes[j]
        if codes is not None:
            if isinstance(value, str | int) and not isinstance(value, bool):
                text = category_text(value)
                return codes.get(text, float(self.outside[j])) if text else math.nan
            raise InvalidInput(
                f"{where}feature {self.names[j]!r} (row {i}) must be text (a category) or null, "
                f"not {_json_type(value)}."
            )
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

    def validate(self, X: np.ndarray, first_row: int = 0) -> np.ndarray:
        """Check a (rows, n) matrix against the schema; returns it unchanged when it passes.

        Args:
            X: The rows, columns in manifest feature order, NaN for missing values.
            first_row: Number of the first row in messages (a batch chunk's offset).

        Raises:
            InvalidInput: naming the first offending feature and row.
        """
        self.check_count(X.shape[0], "")
        finite = np.isfinite(X)
        if not finite.all():
            inf = np.isinf(X)
            if inf.any():
                i, j = np.argwhere(inf)[0]
                raise InvalidInput(
                    f"feature {self.names[j]!r} (row {first_row + i}) is infinite; send finite "
                    "numbers."
                )
            nan_not_allowed = np.isnan(X) & ~self.nullable
            if nan_not_allowed.any():
                i, j = np.argwhere(nan_not_allowed)[0]
                what, send = (
                    ("null or empty", "one of its categories")
                    if self.categorical[j]
                    else ("null or NaN", "a number")
                )
                raise InvalidInput(
                    f"feature {self.names[j]!r} (row {first_row + i}) is missing ({what}), but "
                    f"the model was trained without missing values for it; send {send}."
                )
        if self.integer.any():
            cols = X[:, self.integer]
            bad = (cols != np.round(cols)) & ~np.isnan(cols)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                name = self.names[int(np.flatnonzero(self.integer)[k])]
                raise InvalidInput(f"feature {name!r} (row {first_row + i}) must be an integer.")
        if self.boolean.any():
            cols = X[:, self.boolean]
            bad = (cols != 0) & (cols != 1) & ~np.isnan(cols)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                name = self.names[int(np.flatnonzero(self.boolean)[k])]
                raise InvalidInput(
                    f"feature {name!r} (row {first_row + i}) must be 0, 1, true or false."
                )
        if self.refuse_unseen and self.any_categorical:
            unseen = self.unseen(X)
            if unseen.any():
                i, j = np.argwhere(unseen)[0]
                known = self.features[j].categories or []
                shown = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
                raise InvalidInput(
                    f"feature {self.names[j]!r} (row {first_row + i}) is not one of the "
                    f"categories the model was trained on ({shown}); send one of them "
                    "(MLSHIP_UNSEEN_CATEGORIES=refuse)."
                )
        return X

    def unseen(self, X: np.ndarray) -> np.ndarray:
        """(rows, n) mask of categorical values outside the known categories."""
        with np.errstate(invalid="ignore"):
            return np.asarray(self.outside == X, dtype=bool)


def _has_bool(rows: Sequence[Any]) -> bool:
    return any(v is True or v is False for row in rows for v in row)


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "that value"


def category_codes(values: Sequence[Any] | np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The codes of a column of a categorical feature: the position of each value in
    ``spec.categories``, k for any other value, NaN for a missing one (None or NaN).

    Numbers are read as their text (``2007`` and ``2007.0`` both as ``"2007"``), so a column
    of codes or years may be declared categorical.
    """
    codes = category_index(spec)
    outside = float(len(spec.categories or []))
    return np.fromiter(
        (math.nan if missing_value(v) else codes.get(category_text(v), outside) for v in values),
        dtype=np.float64,
        count=len(values),
    )


def text_codes(column: Any, spec: FeatureSpec, csv_cell: bool) -> np.ndarray:
    """The codes of a text column (a pyarrow string array) of a categorical feature, looked up
    in C++: as :func:`category_codes` gives them (null is missing; text trimmed of what
    ``str.strip()`` trims: pyarrow trims the same characters, tested for every one), without
    a Python object per value.

    Args:
        csv_cell: Each value is a CSV cell, read as the service reads one
            (:meth:`FeatureSchema.text_value`): also missing when empty or a null spelling
            (:data:`CSV_MISSING`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    categories = list(spec.categories or [])
    codes = category_index(spec)
    column = pc.utf8_trim_whitespace(column)
    index = pc.index_in(column, value_set=pa.array(list(codes), pa.string()))
    out = np.full(len(column), float(len(categories)))  # the code of an unseen text
    found = pc.is_valid(index).to_numpy(zero_copy_only=False)
    out[found] = np.fromiter(codes.values(), np.float64, len(codes))[index.drop_null().to_numpy()]
    # empty text is missing, as an empty CSV cell is (category_text)
    spellings = pa.array(sorted(CSV_MISSING) if csv_cell else [""], pa.string())
    missing = pc.or_kleene(pc.is_null(column), pc.is_in(column, value_set=spellings))
    out[missing.to_numpy(zero_copy_only=False)] = np.nan
    return out


def flag_values(column: Any) -> np.ndarray | None:
    """A text column (a pyarrow string array) of CSV cells of a boolean feature, read in C++
    as :meth:`FeatureSchema.text_value` reads each cell: trimmed, ``true`` or ``false`` in any
    case (:data:`BOOLEAN_CELLS`), missing when empty or a null spelling, else a number; or
    None when a cell is none of those (the caller's exact path words the error)."""
    return _cell_values(column, BOOLEAN_CELLS)


def number_values(column: Any) -> np.ndarray | None:
    """A text column of CSV cells of a number feature, read in C++ as
    :meth:`FeatureSchema.text_value` reads each cell (trimmed, missing when empty or a null
    spelling, else a number), or None when a cell is not one."""
    return _cell_values(column, {})


def _cell_values(column: Any, words: dict[str, float]) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = pc.utf8_trim_whitespace(column)
    lower = pc.utf8_lower(cells) if words else cells
    missing = pc.or_kleene(
        pc.is_null(cells), pc.is_in(cells, value_set=pa.array(sorted(CSV_MISSING), pa.string()))
    )
    out = np.full(len(column), np.nan)
    rest = pc.invert(missing)
    for text, value in words.items():
        flags = pc.and_kleene(rest, pc.equal(lower, text)).to_numpy(zero_copy_only=False)
        out[flags] = value
        rest = pc.and_kleene(rest, pc.not_equal(lower, text))
    numbers = rest.to_numpy(zero_copy_only=False)
    if numbers.any():
        try:
            out[numbers] = pc.cast(cells.filter(rest), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    return out


def put_numbers(out: np.ndarray, column: Any) -> None:
    """Write a pyarrow number column into ``out`` (a column of a row-major matrix), a chunk at
    a time, nulls as NaN. ``column.to_numpy()`` would first join the chunks (a multi-threaded
    CSV parse makes one per block) into a new array: 2.1 against 4.2 ms for 146,000 rows of 5
    columns."""
    start = 0
    for chunk in column.chunks:
        stop = start + len(chunk)
        out[start:stop] = chunk.to_numpy(zero_copy_only=False)
        start = stop


def category_index(spec: FeatureSpec) -> dict[str, float]:
    """Each category's code by its :func:`category_text` (a bundle trained before text was
    trimmed may list padded categories; the last of a repeated text wins)."""
    return {category_text(c): float(k) for k, c in enumerate(spec.categories or [])}


def category_text(value: Any) -> str:
    """How a categorical value is named: text trimmed of surrounding whitespace, whole
    numbers without ``.0``. Text that is empty once trimmed names no category: the value is
    missing (:func:`missing_value`), as an empty CSV cell is.

    Text is trimmed as every CSV cell is (:meth:`FeatureSchema.text_value`), from whatever
    source: a fixed-width (``CHAR``) export pads ``'basic'`` to ``'basic     '``, and a model
    trained on the padded text would find the endpoint's trimmed CSV cell unseen.
    """
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def missing_value(value: Any) -> bool:
    """None, NaN, or text that is empty once trimmed (as an empty CSV cell is missing)."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))
