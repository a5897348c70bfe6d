"""Data validation with a Great Expectations (1.x) suite generated from reference data.

The suite is plain JSON committed to the repository (``pipelines/expectations/*.json``, one per
bundled dataset), so a change to what "valid data" means shows up in review. It checks the
column set, types, missing values (none, or no more than the reference had plus a tolerance),
value ranges widened by a tolerance, the values of text columns and of the target, and no
duplicate rows (``expect_compound_columns_to_be_unique`` over every column: a row equal to
another row in all columns is a duplicate). :func:`build_suite` writes a suite that the data it
was built from passes.

Great Expectations takes about 5 s to import, so it is imported only when validation runs.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

# Names as Great Expectations matches them against a pandas dtype: numpy names, and pandas'
# nullable dtypes by class name (GE does not resolve pandas' own "Int64" / "boolean").
NUMERIC_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "Int64Dtype", "Float64Dtype",
]  # fmt: skip
# numpy's bool and pandas' nullable boolean; a bool column may also arrive as 0/1 integers.
BOOL_TYPES = ["bool", "BooleanDtype"]
MAX_TARGET_CLASSES = 20
# A text column with more distinct values than this is free text: no value set.
MAX_CATEGORIES = 50


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _is_bool(series: pd.Series) -> bool:
    """A bool column, also when missing values made pandas read it as ``object``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return True
    values = series.dropna()
    return len(values) > 0 and pd.api.types.infer_dtype(values, skipna=True) == "boolean"


def _value_set(values: pd.Series) -> list[Any]:
    """The distinct values as JSON-friendly Python values, in a stable order."""
    return sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))


def build_suite(
    frame: pd.DataFrame,
    target: str,
    name: str,
    tolerance: float = 0.1,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Generate an expectation suite (as its JSON dict) from reference data.

    The suite passes on ``frame`` itself, whatever its columns hold:

    - every column: not null; a column that has missing values only for at least ``mostly``
      of the rows, its observed non-null share less ``tolerance`` (none when that is 0);
    - numeric columns: a numeric dtype, and the observed range widened by ``tolerance`` of
      the span on each side (a numeric target with at most 20 distinct values: that set);
    - bool columns (also bool with missing values, which CSV readers load as ``object``):
      a numeric or bool dtype, and the observed values;
    - text (or categorical) columns: the observed values when there are at most 50 of them;
      a text target always gets its set (the classes);
    - the exact column set, at least one row, and no duplicate rows unless the reference has
      some;
    - ``exclude``d columns (identifiers, timestamps: params.yaml ``data.exclude``) only in the
      column set: a range of ids would refuse the next export, whose new customers have new
      ids. Duplicates are looked for in the other columns.

    Args:
        frame: The reference data, target column included.
        target: The label column.
        name: Suite name.
        tolerance: Ranges are widened by this share of the observed span on each side, and
            the non-null share of a column with missing values may drop by this much.
        exclude: Columns that get no expectation of their own.

    Returns:
        The suite as a JSON-serialisable dict (``ExpectationSuite.to_json_dict()``).
    """
    import pandas as pd

    gx = _gx()
    # GE re-exports its expectation classes without __all__; typed as Any on purpose.
    gxe: Any = importlib.import_module("great_expectations.expectations")
    gx.get_context(mode="ephemeral")  # suites need an active context, even in memory
    suite = gx.ExpectationSuite(name=name)
    columns = [str(c) for c in frame.columns]
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    checked = [c for c in columns if c not in exclude]
    for column in checked:
        series = frame[column]
        values = series.dropna()
        missing = len(series) - len(values)
        if missing == 0:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
        else:
            mostly = math.floor((len(values) / len(series) - tolerance) * 100) / 100
            if mostly > 0:
                suite.add_expectation(
                    gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly)
                )
        if len(values) == 0:
            continue
        if _is_bool(series):
            type_list = [*NUMERIC_TYPES, *BOOL_TYPES]
            if str(series.dtype) not in type_list:
                type_list.append(str(series.dtype))
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=type_list)
            )
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=_value_set(values))
            )
            continue
        if not pd.api.types.is_numeric_dtype(series):
            # text and categorical columns; other kinds (dates, mixed objects) get no set
            kind = pd.api.types.infer_dtype(values, skipna=True)
            if kind in ("string", "categorical") and (
                column == target or values.nunique() <= MAX_CATEGORIES
            ):
                suite.add_expectation(
                    gxe.ExpectColumnValuesToBeInSet(column=column, value_set=_value_set(values))
                )
            continue
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES)
        )
        if column == target and values.nunique() <= MAX_TARGET_CLASSES:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=_value_set(values))
            )
            continue
        low, high = float(values.min()), float(values.max())
        margin = tolerance * (high - low)
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=low - margin, max_value=high + margin
            )
        )
    if not frame.duplicated(subset=checked).any():  # else it would fail its own suite
        suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=checked))
    data: dict[str, Any] = suite.to_json_dict()
    data.pop("id", None)
    data["meta"] = {"mlship": {"target": target, "tolerance": tolerance, "rows": len(frame)}}
    if exclude:
        data["meta"]["mlship"]["exclude"] = list(exclude)
    return data


def write_suite(suite: dict[str, Any], path: Path) -> Path:
    """Write a suite as stable, reviewable JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, sort_keys=True) + "\n")
    return path


def load_suite(path: Path) -> dict[str, Any]:
    """Read a committed suite, with an error that says how to regenerate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Expectation suite {path} does not exist. Generate it from reference data with "
            "`mlship expectations --data DATA --out "
            f"{path}`, or set data.expectations to null in params.yaml to skip validation."
        )
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"Expectation suite {path} is not valid JSON ({e}). Regenerate it with "
            "`mlship expectations`."
        ) from e
    return data


def _describe(config: Any, result: dict[str, Any]) -> str:
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    where = f" on column {kwargs.pop('column')!r}" if "column" in kwargs else ""
    if "column_list" in kwargs:
        kwargs["column_list"] = f"<{len(kwargs['column_list'])} columns>"
    if "column_set" in kwargs:
        kwargs["column_set"] = f"<{len(kwargs['column_set'])} columns>"
    detail = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    observed = ""
    if result.get("unexpected_count"):
        sample = result.get("partial_unexpected_list") or []
        shown = ", ".join(repr(v) for v in sample[:3] if not isinstance(v, dict))
        observed = f"; {result['unexpected_count']} unexpected value(s)" + (
            f", e.g. {shown}" if shown else ""
        )
    elif "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, list) and len(value) > 8:
            value = f"<{len(value)} items>"
        observed = f"; observed {value}"
    if "details" in result and "mismatched" in result["details"]:
        observed += f"; mismatched {result['details']['mismatched']}"
    return f"  - {config.type}{where} ({detail}){observed}"


def validate(frame: pd.DataFrame, suite: dict[str, Any], source: str = "the data") -> int:
    """Validate a table against a suite.

    Returns:
        The number of expectations checked (all passed).

    Raises:
        DataError: listing each failed expectation, its column and what was observed.
    """
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    expectations = gx.ExpectationSuite(**{k: v for k, v in suite.items() if k != "meta"})
    batch_definition = (
        context.data_sources.add_pandas("mlship")
        .add_dataframe_asset("training-data")
        .add_batch_definition_whole_dataframe("all-rows")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    report = batch.validate(expectations, result_format="SUMMARY")
    failed = [r for r in report.results if not r.success]
    if failed:
        lines = [_describe(r.expectation_config, dict(r.result)) for r in failed]
        raise DataError(
            f"{source} fails {len(failed)} of {len(report.results)} expectations of suite "
            f"{suite.get('name')!r}, so training refuses it. Fix the data (or, if the new data "
            "is right and the reference has changed, regenerate the suite with `mlship "
            "expectations` and review the diff):\n" + "\n".join(lines)
        )
    return len(report.results)


def expectations_from(
    data: str, target: str, out: Path, tolerance: float, exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """Build a suite from reference data and write it to ``out``; returns the suite.

    Raises:
        DataError: when ``target`` or an excluded column is not a column of ``data`` (with
            the closest name), or the target is excluded.
    """
    from pipelines.data import did_you_mean, read_table

    dataset = read_table(data)
    columns = [str(c) for c in dataset.frame.columns]
    if target not in columns:
        raise DataError(
            f"{data} has no target column {target!r}.{did_you_mean(target, columns)} Pass the "
            "label column with --target."
        )
    for name in exclude:
        if name == target:
            raise DataError(
                f"--exclude {name!r} is the target column, which is always checked; leave it "
                "out of --exclude."
            )
        if name not in columns:
            raise DataError(
                f"--exclude {name!r} is not a column of {data}.{did_you_mean(name, columns)} "
                "Fix the name or leave it out."
            )
    suite = build_suite(
        dataset.frame, target, name=Path(out).stem, tolerance=tolerance, exclude=exclude
    )
    write_suite(suite, out)
    return suite
