"""Profile the training columns into the bundle's feature schema and drift reference, and
encode columns into the matrix the model takes.

What the service validates (type, range, nullability, categories per feature) and what the
drift monitor compares against (a histogram per feature, over category codes for categorical
features) both come from the training rows, here. Categorical values become codes through
:func:`core.features.category_codes`, the same rule serving and batch scoring apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from core.features import category_codes, category_text, missing_value
from core.manifest import DriftReference, Dtype, FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_CATEGORIES = 50
HISTOGRAM_BINS = 10
# An integer or text column with a different value in every row, of at least this many rows,
# is noted as a likely identifier (a float column is often so without being one).
_IDENTIFIER_DTYPES = frozenset({"int64", "category"})
_FEW_ROWS = 20


def profile(
    frame: pd.DataFrame,
    dtypes: Mapping[str, Dtype],
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    say: Callable[[str], None] | None = None,
) -> tuple[list[FeatureSpec], dict[str, DriftReference]]:
    """Feature specs and drift references of the training rows.

    Args:
        frame: The training rows' feature columns, values as read.
        dtypes: Each column's feature type (see :func:`pipelines.data.column_dtype`).
        max_categories: Categories kept per categorical column, most frequent first; the
            rest fall in one 'other' bucket.
        say: Where notes go (capped or constant columns).
    """
    specs: list[FeatureSpec] = []
    reference: dict[str, DriftReference] = {}
    for name in (str(c) for c in frame.columns):
        column = frame[name]
        if dtypes[name] == "category":
            spec = _categorical(name, column, max_categories, say)
            codes = category_codes(column.to_numpy(dtype=object), spec)
            reference[name] = _category_reference(codes, spec)
        else:
            values = _numbers(column, dtypes[name])
            spec = _numeric(name, values, dtypes[name])
            present = values[~np.isnan(values)]
            if present.size:
                reference[name] = histogram(present)
        if say is not None:
            distinct = column.nunique(dropna=True)
            if distinct == 1:
                say(f"note: column {name!r} is constant in the training rows; it informs nothing")
            elif dtypes[name] == "category" and _dates_as_text(column):
                say(
                    f"note: column {name!r} holds dates or times as text, so each one is a "
                    "category of its own and a later date is never seen in training; derive "
                    "the numbers the model should learn from (days since, month, weekday), or "
                    f"leave it out: --set 'data.exclude=[{name}]'"
                )
            elif dtypes[name] == "category" and (example := _numbers_as_text(column)):
                say(
                    f"note: column {name!r} holds numbers written as text ({example!r}), so "
                    "each one is a category of its own; export them as plain numbers (no "
                    "thousands separators, currency or percent signs)"
                )
            elif dtypes[name] in _IDENTIFIER_DTYPES and distinct == len(column) >= _FEW_ROWS:
                say(
                    f"note: column {name!r} holds a different value in every training row, as "
                    "an identifier does, which tells the model nothing about new rows; if it "
                    f"is one, leave it out: --set 'data.exclude=[{name}]'"
                )
        specs.append(spec)
    return specs, reference


# ISO 8601 dates, alone or with a time: what exports write for a date column.
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"


def _dates_as_text(column: Any) -> bool:
    """Every sampled value of a text column is an ISO 8601 date (:func:`_text_sample`)."""
    sample = _text_sample(column)
    return sample is not None and bool(sample.str.fullmatch(_ISO_DATE).all())


# A number as spreadsheets format it: thousands separators, a currency or percent sign.
_FORMATTED_NUMBER = r"^[-+(]?[$€£¥]?\s?\d{1,3}(?:,\d{3})*(?:\.\d+)?\s?[%)]?$"


def _numbers_as_text(column: Any) -> str | None:
    """A formatted value of a text column whose sampled values (:func:`_text_sample`) are
    all numbers as spreadsheets format them, some with a separator or sign; else None."""
    sample = _text_sample(column)
    if sample is None or not sample.str.fullmatch(_FORMATTED_NUMBER).all():
        return None
    formatted = sample[sample.str.contains(r"[,$€£¥%()]")]
    return str(formatted.iloc[0]) if formatted.size else None


def _text_sample(column: Any) -> Any:
    """The first 1,000 present values of a text column, trimmed, when there are enough of
    them and more than a few distinct ones to judge what they hold; else None."""
    sample = column.dropna().head(1000).astype(str).str.strip()
    if sample.size < _FEW_ROWS or sample.nunique() <= HISTOGRAM_BINS:
        return None
    return sample


def describe_features(
    X: np.ndarray, names: list[str]
) -> tuple[list[FeatureSpec], dict[str, DriftReference]]:
    """Specs and references of an all-numeric float matrix (columns declared float64)."""
    X = np.asarray(X, dtype=np.float64)
    specs, reference = [], {}
    for j, name in enumerate(names):
        specs.append(_numeric(name, X[:, j], "float64"))
        present = X[:, j][~np.isnan(X[:, j])]
        if present.size:
            reference[name] = histogram(present)
    return specs, reference


def encode(frame: pd.DataFrame, specs: list[FeatureSpec]) -> np.ndarray:
    """The (rows, features) float64 matrix the model takes: numbers as they are (booleans
    0/1), categories as their codes, missing values NaN."""
    X = np.empty((len(frame), len(specs)), dtype=np.float64)
    for j, spec in enumerate(specs):
        column = frame[spec.name]
        if spec.is_categorical:
            X[:, j] = category_codes(column.to_numpy(dtype=object), spec)
        else:
            X[:, j] = _numbers(column, spec.dtype)
    return X


def raw_rows(frame: pd.DataFrame, specs: list[FeatureSpec]) -> list[list[float | str | None]]:
    """Rows as a client sends them: numbers, text for categories, None for missing."""
    rows: list[list[float | str | None]] = []
    for record in frame[[s.name for s in specs]].itertuples(index=False):
        row: list[float | str | None] = []
        for spec, value in zip(specs, record, strict=True):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                row.append(None)
            elif spec.is_categorical:
                row.append(category_text(value))
            else:
                row.append(float(value))
        rows.append(row)
    return rows


def histogram(present: np.ndarray, bins: int = HISTOGRAM_BINS) -> DriftReference:
    """The reference histogram of a number feature, binned so that a shift between any two
    common values shows in the PSI:

    - at most ``bins`` distinct values (a flag, a count, a rating, a code): one bin per
      value, its edges halfway to the next values. Quantile edges would merge them: a 0/1
      flag got a single bin, so its PSI stayed 0 whatever its share became.
    - more: quantile edges (each bin about the same share of the training rows), and a value
      that holds a bin's share or more (a point mass, as the zeros of a zero-inflated
      amount) gets a bin of its own, ``[value, next float)``, apart from the values near it.
    """
    distinct = np.unique(present)
    if distinct.size == 1:
        edges = np.array([distinct[0] - 0.5, distinct[0] + 0.5])
    elif distinct.size <= bins:
        edges = np.concatenate(([distinct[0]], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1]]))
    else:
        quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1))
        edges, repeats = np.unique(quantiles, return_counts=True)
        masses = edges[repeats > 1]
        edges = np.unique(np.concatenate((edges, np.nextafter(masses, np.inf))))
    counts, _ = np.histogram(present, bins=edges)
    return DriftReference(bin_edges=edges.tolist(), frequencies=(counts / counts.sum()).tolist())


def _numbers(column: Any, dtype: Dtype) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce") if dtype != "bool" else column.astype(float)
    return np.asarray(values, dtype=np.float64)


def _numeric(name: str, values: np.ndarray, dtype: Dtype) -> FeatureSpec:
    present = values[~np.isnan(values)]
    return FeatureSpec(
        name=name,
        dtype=dtype,
        min=float(present.min()) if present.size else None,
        max=float(present.max()) if present.size else None,
        nullable=bool(present.size < values.size),
    )


def _categorical(
    name: str, column: Any, cap: int, say: Callable[[str], None] | None
) -> FeatureSpec:
    present = [category_text(v) for v in column.dropna().tolist() if not missing_value(v)]
    counts = Counter(present)
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    other = len(ranked) > cap
    if other and say is not None:
        say(
            f"note: column {name!r} has {len(ranked)} categories; the {cap} most frequent are "
            "kept and the rest share one 'other' bucket (data.max_categories)"
        )
    kept = ranked[:cap]
    return FeatureSpec(
        name=name,
        dtype="category",
        min=0.0,
        max=float(len(kept) if other else len(kept) - 1),
        nullable=len(present) < len(column),
        categories=kept,
        other=other,
    )


def _category_reference(codes: np.ndarray, spec: FeatureSpec) -> DriftReference:
    """Shares per category code, then one for 'other'/unseen: a histogram over codes with unit
    bins, so the drift monitor compares categories like any other feature (PSI)."""
    k = len(spec.categories or [])
    edges = np.arange(k + 2, dtype=np.float64) - 0.5
    present = codes[~np.isnan(codes)]
    counts, _ = np.histogram(present, bins=edges)
    total = counts.sum()
    return DriftReference(
        bin_edges=edges.tolist(),
        frequencies=(counts / total if total else counts.astype(float)).tolist(),
    )
