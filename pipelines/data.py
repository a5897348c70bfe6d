"""Training data: materialise the bundled datasets, read CSV/Parquet (local or s3://), split X/y.

Every problem a user can fix is raised as :class:`~core.errors.DataError` with one paragraph
naming the problem and the fix; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from core.errors import DataError
from core.features import CSV_MISSING, missing_value
from core.files import data_format, require_data_format, sha256_file
from core.manifest import Dtype
from core.s3 import download, is_s3_uri, object_version

if TYPE_CHECKING:
    import pandas as pd

BuiltinDataset = Literal["breast_cancer", "diabetes", "penguins"]
# Where each bundled dataset comes from: a package installed with the pipelines group, no download.
BUILTIN_SOURCES: dict[str, str] = {
    "breast_cancer": "scikit-learn",
    "diabetes": "scikit-learn",
    "penguins": "palmerpenguins",
}


@dataclass(frozen=True)
class Dataset:
    """A table read from a file, with the SHA-256 of the file's bytes.

    ``version`` names exactly what was read: ``s3:<VersionId>`` for an object of a versioned
    bucket (the version downloaded, whatever is written after), else ``sha256:<hex>``.
    """

    frame: pd.DataFrame
    source: str
    sha256: str
    version: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", f"sha256:{self.sha256}")


@dataclass(frozen=True)
class XY:
    """The feature columns as read (text, numbers, booleans) and the target.

    Attributes:
        features: The feature columns, in model input order, values as in the file.
        dtypes: Each feature's declared type (the column's type, or the params override).
        y: The labels (text labels as text) or regression targets.
    """

    features: pd.DataFrame
    dtypes: dict[str, Dtype]
    y: np.ndarray
    target: str
    classes: list[bool | int | float | str] | None

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.features.columns]


def materialise(dataset: BuiltinDataset, path: Path) -> Path:
    """Write one of the bundled datasets as a CSV (no download).

    ``breast_cancer`` (classification) and ``diabetes`` (regression) come from scikit-learn,
    their feature names with spaces replaced by ``_`` and the label in the column ``target``.
    ``penguins`` is the Palmer penguins table shipped inside the ``palmerpenguins`` package
    (344 rows; text columns ``species``, the usual label, ``island`` and ``sex``; missing
    values, written as empty cells). The bytes are the same on every run, so DVC and the
    dataset hash see the same file.

    Args:
        dataset: ``breast_cancer``, ``diabetes`` or ``penguins``.
        path: The CSV file to write (parent directories are created).

    Returns:
        The path written.

    Raises:
        DataError: for an unknown dataset name (with the closest one).
    """
    if dataset not in BUILTIN_SOURCES:
        close = difflib.get_close_matches(str(dataset), list(BUILTIN_SOURCES), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise DataError(
            f"Unknown bundled dataset {dataset!r}. {hint}Use one of: {', '.join(BUILTIN_SOURCES)}."
        )
    frame = _load_builtin(dataset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _load_builtin(dataset: str) -> pd.DataFrame:
    if dataset == "penguins":
        from palmerpenguins import load_penguins

        frame: pd.DataFrame = load_penguins()
        return frame
    from sklearn.datasets import load_breast_cancer, load_diabetes

    loader = load_breast_cancer if dataset == "breast_cancer" else load_diabetes
    frame = loader(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


def read_table(source: str | Path) -> Dataset:
    """Read a CSV or Parquet file, local or ``s3://``, and hash its bytes.

    Args:
        source: A local path or an ``s3://bucket/key`` URI of a CSV or Parquet file (the
            suffixes of :mod:`core.files`).

    Raises:
        DataError: when the file is missing, has another format, or cannot be parsed.
    """
    text = str(source)
    require_data_format(
        text,
        "Convert the data to CSV or Parquet and pass it with --data (or set data.path in "
        "params.yaml).",
    )
    if is_s3_uri(text):
        # The version is read first and that version downloaded: a later upload cannot change
        # what the recorded version names.
        version_id = object_version(text)
        with tempfile.TemporaryDirectory(prefix="mlship-data-") as tmp:
            local = download(text, Path(tmp) / Path(text).name, version_id=version_id)
            return Dataset(
                frame=_parse(local, text),
                source=text,
                sha256=sha256_file(local),
                version=f"s3:{version_id}" if version_id is not None else "",
            )
    path = Path(text)
    if not path.is_file():
        raise DataError(
            f"Data file {path} does not exist"
            + (" (it is a directory)" if path.is_dir() else "")
            + ". Pass an existing CSV or Parquet file with --data, or set data.path in "
            "params.yaml; `mlship prepare` writes the bundled breast-cancer data to "
            "data/breast_cancer.csv."
        )
    return Dataset(frame=_parse(path, text), source=text, sha256=sha256_file(path))


def _parse(path: Path, source: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if data_format(path) == "parquet":
            return pd.read_parquet(path)
        frame = _trimmed(_read_csv(path))
    except pd.errors.EmptyDataError as e:
        raise DataError(
            f"{source} is empty: it has no header and no rows. Point --data at a file with a "
            "header row and at least a few hundred labelled rows."
        ) from e
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        kind = "Parquet" if data_format(path) == "parquet" else "CSV"
        raise DataError(
            f"Cannot read {source} as {kind}: {str(e).splitlines()[0] if str(e) else e!r}. "
            f"Check that the file really is {kind} (not compressed or another format) and "
            "re-export it."
        ) from e
    hint = separator_hint(source, [str(c) for c in frame.columns])
    if hint:
        raise DataError(hint)
    return frame


def _read_csv(source: Path | io.StringIO) -> pd.DataFrame:
    import pandas as pd

    # pandas' own null spellings, named: the endpoint and batch scoring read by them too
    return pd.read_csv(source, keep_default_na=False, na_values=sorted(CSV_MISSING))


def _trimmed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as if every cell had been trimmed of surrounding whitespace, as the endpoint
    and batch scoring trim each CSV cell before they read it.

    pandas reads a padded number (`` 3.5 ``) as a number, but one padded null spelling
    (`` NA ``) or bool (`` True ``) makes the whole column text, and a fixed-width export's
    padded text stays padded. Each text column with a padded cell is read again from its
    trimmed cells, so that pandas types it as it would have typed the trimmed file.
    """
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        cells = column.str.strip()  # text or NaN, as read_csv gives an object column
        if cells.equals(column):
            continue
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")  # quotes a lone empty cell: not a blank line
        writer.writerow(["cell"])
        writer.writerows([[v if isinstance(v, str) else ""] for v in cells])
        text.seek(0)
        again = _read_csv(text)["cell"]
        again.index = column.index
        frame[name] = again
    return frame


# Separators of CSV exports that are not comma-separated (Excel in locales with a decimal
# comma writes semicolons).
_OTHER_SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'"))


def separator_hint(source: str, columns: list[str]) -> str | None:
    """What to do when a CSV file read as comma-separated has one column whose name holds
    another separator (its values are separated by it), or None."""
    if len(columns) != 1:
        return None
    for separator, name in _OTHER_SEPARATORS:
        if separator in columns[0]:
            return (
                f"{source} has a single column, {columns[0][:60]!r}: its values are separated "
                f"by {name}, and mlship reads comma-separated CSV. Export it with commas (in "
                "pandas: to_csv(path, index=False); in Excel: 'CSV UTF-8 (Comma delimited)') or "
                "as Parquet."
            )
    return None


def split_xy(
    frame: pd.DataFrame,
    target: str,
    task: str,
    source: str = "the data",
    declared: Mapping[str, Dtype] | None = None,
    exclude: Sequence[str] = (),
) -> XY:
    """Check a table and split it into the feature columns and the target.

    Each feature's type is the column's own: floats stay floats even when every value is
    whole, integers are integers, booleans booleans, and text (or anything else) is
    categorical; ``declared`` (params.yaml ``data.features``) overrides it per column.

    Args:
        frame: The table, one row per example.
        target: Name of the label column.
        task: ``classification`` or ``regression``.
        source: Where the table came from, for error messages.
        declared: Feature types that override the columns' own.
        exclude: Columns that are not features (params.yaml ``data.exclude``).

    Raises:
        DataError: for a missing target column (suggesting the closest name), no rows, an
            excluded column that is not in the table or is the target, a date or time
            feature column, a
            declared type for a column that is not a feature (with the closest name), a
            column with no values at all, missing labels, a single class, or a non-numeric
            regression target.
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    if target not in columns:
        hint = did_you_mean(target, columns) or (
            f" The columns are: {', '.join(columns[:12])}{' …' if len(columns) > 12 else ''}."
        )
        raise DataError(
            f"{source} has no target column {target!r}.{hint} Set data.target in params.yaml "
            "to the name of the label column."
        )
    if len(frame) == 0:
        raise DataError(
            f"{source} has a header but no rows. Training needs labelled rows; check the export "
            "that produced the file."
        )
    for name in exclude:
        if name == target:
            raise DataError(
                f"params.yaml data.exclude lists the target column {target!r}; the target is "
                "never a feature. Remove it from data.exclude."
            )
        if name not in columns:
            raise DataError(
                f"params.yaml data.exclude lists {name!r}, which is not a column of "
                f"{source}.{did_you_mean(name, columns)} Fix the name or remove the entry."
            )
    features = [c for c in columns if c != target and c not in exclude]
    if not features:
        left = " left after data.exclude" if exclude else ""
        raise DataError(
            f"{source} has no feature columns{left}, only the target column {target!r}. Add "
            "the input columns the model should learn from."
        )
    for name in declared or {}:
        if name not in features:
            raise DataError(
                f"params.yaml data.features declares {name!r}, which is not a feature column "
                f"of {source}.{did_you_mean(name, features)} Fix the name or remove the entry."
            )
    times = [c for c in features if _is_time(frame[c])]
    if times:
        listed = ", ".join(f"{c!r} ({frame[c].dtype})" for c in times)
        raise DataError(
            f"{source}: feature column(s) {listed} hold dates or times, which a model cannot "
            "take as they are (as text each moment would be a category of its own). Derive "
            "the numbers it should learn from as columns of their own (days since, month, "
            f"weekday), or leave them out: --set 'data.exclude=[{', '.join(times)}]'."
        )
    empty = [c for c in features if _no_values(frame[c])]
    if empty:
        raise DataError(
            f"{source}: feature column(s) {', '.join(map(repr, empty))} have no values at all, "
            "so there is nothing to learn from them. Drop the column(s) from the file, or fill "
            "them in."
        )
    dtypes = {c: (declared or {}).get(c) or column_dtype(frame[c]) for c in features}
    y_series = frame[target]
    missing_labels = int(y_series.isna().sum())
    if missing_labels:
        raise DataError(
            f"{source}: {missing_labels} row(s) have no value in the target column {target!r}. "
            "Drop the unlabelled rows or fill in their labels before training."
        )
    classes: list[bool | int | float | str] | None = None
    if task == "classification":
        y = y_series.to_numpy()
        if y.dtype.kind in "OUT" or not pd.api.types.is_numeric_dtype(y_series):
            y = y_series.astype(str).str.strip().to_numpy(dtype=object)  # as category_text
        labels = pd.unique(y).tolist()
        if len(labels) < 2:
            raise DataError(
                f"{source}: the target column {target!r} has a single class ({labels[0]!r}), "
                "so there is nothing to learn. A classifier needs examples of at least two "
                "classes; check the filter or export that produced the data, or choose a "
                "regression model in params.yaml if the target is a number."
            )
        classes = sorted(np.unique(y).tolist())
    else:
        if not pd.api.types.is_numeric_dtype(y_series):
            raise DataError(
                f"{source}: the target column {target!r} is not numeric, but the model in "
                "params.yaml is a regressor. Choose a classifier (model.type) or convert the "
                "target to numbers."
            )
        y = y_series.to_numpy(dtype=np.float64)
    return XY(
        features=_numpy_backed(frame[features], dtypes),
        dtypes=dtypes,
        y=y,
        target=target,
        classes=classes,
    )


def did_you_mean(name: str, names: list[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``names``, or nothing."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _numpy_backed(frame: pd.DataFrame, dtypes: Mapping[str, Dtype]) -> pd.DataFrame:
    """The feature columns with pandas' nullable types (``Int64``, ``boolean``, ``string``,
    as a Parquet file with gaps reads) as plain columns, their ``pd.NA`` as NaN (numbers) or
    None (anything else): what the rest of training takes for a missing value. The feature
    types were read from the columns before (an ``Int64`` column stays an int64 feature)."""
    import pandas as pd

    plain = {}
    for name in frame.columns:
        column = frame[name]
        if not isinstance(column.dtype, pd.api.extensions.ExtensionDtype) or isinstance(
            column.dtype, pd.CategoricalDtype
        ):
            continue
        if dtypes[str(name)] in ("int64", "float64"):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            plain[name] = pd.Series(values, index=column.index, name=name)
        else:
            plain[name] = column.astype(object).where(column.notna(), None)
    return frame.assign(**plain) if plain else frame


def _no_values(column: pd.Series) -> bool:
    """Every value is missing: null, NaN, or text that is empty once trimmed (a Parquet
    export's '' is a gap, :func:`core.features.missing_value`)."""
    if column.isna().all():
        return True
    return column.dtype == object and bool(column.map(missing_value).all())


def _is_time(column: pd.Series) -> bool:
    import pandas as pd

    dtype = column.dtype
    return bool(
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def column_dtype(column: pd.Series) -> Dtype:
    """A column's feature type by its declared dtype, never by its values."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_integer_dtype(column):
        return "int64"
    if pd.api.types.is_float_dtype(column):
        return "float64"
    return "category"
