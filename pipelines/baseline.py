"""The training features' data-quality baseline, in SageMaker Model Monitor's own formats.

The scheduled batch pipeline checks each input against ``statistics.json`` and
``constraints.json`` before it scores (``infra/pipeline_definition.py``). Training writes both
into the bundle from the training rows, and ``mlship publish`` puts them where the pipeline
reads them (:mod:`core.baseline`). The documents follow the documented schemas:

- "Schema for Statistics (statistics.json file)":
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html
- "Schema for Constraints (constraints.json file)":
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html

and the analyzer's library, Deequ, where the schemas leave a choice open: numbers' standard
deviation is the population one (``StandardDeviation``), categorical buckets are the 1,000 most
frequent values (``Histogram``), the KLL sketch and its buckets are :mod:`pipelines.kll`, and a
value's type is read from its text as the analyzer reads a CSV cell (``StatefulDataType``).

Features are named as the check sees the headerless CSV input, ``_c0``, ``_c1``, ... in the
manifest's feature order (:func:`core.baseline.column_name`).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.baseline import BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS, column_name
from core.features import category_text, missing_value
from core.manifest import FeatureSpec
from pipelines.kll import distribution
from pipelines.profile import encode

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 0.0
# Deequ's Histogram.MaximumAllowedDetailBins: the most frequent values listed per column.
MAX_CATEGORICAL_BUCKETS = 1000
# Deequ's StatefulDataType: how the analyzer types a CSV cell's text (its BOOLEAN pattern is
# ^(true|false)$, which True and False do not match).
_FRACTIONAL = re.compile(r"^(-|\+)? ?\d*\.\d*$")
_INTEGRAL = re.compile(r"^(-|\+)? ?\d*$")
# A boolean feature's values as pandas writes them in a CSV file.
BOOLEAN_DOMAIN = ("False", "True")
# The check is the data contract the service enforces too: every value of the checked data
# must have the baseline's type (1.0 = 100 %: AWS's recorded example run reports "Expected
# match: 100.0%" against a suggested baseline) and no value may fall outside a domain. The
# distribution comparison is off: drift is watched by the drift alarm (PSI per feature), and
# with FailOnViolation a comparison would stop scoring whenever a batch shifts, not when it is
# unusable.
MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Disabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}


@dataclass(frozen=True)
class Baseline:
    """The two documents, as JSON-ready dictionaries."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]

    def write(self, directory: Path) -> dict[str, Path]:
        """Write both files under ``directory`` at their bundle paths; returns the paths by
        bundle file name (what :func:`core.bundle.write_bundle` takes as ``extra_files``)."""
        written = {}
        for name, doc in (
            (BUNDLE_STATISTICS, self.statistics),
            (BUNDLE_CONSTRAINTS, self.constraints),
        ):
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # allow_nan=False: a NaN would make the file unreadable JSON to the analyzer.
            path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
            written[name] = path
        return written


def data_quality_baseline(frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> Baseline:
    """Statistics and constraints of the training rows' features.

    Args:
        frame: The training rows' feature columns, values as read.
        specs: The feature specs of those rows (:func:`pipelines.profile.profile`), in the
            manifest's order: the order of the batch input's columns.

    Returns:
        The baseline; feature ``j`` is named ``_c<j>``.
    """
    X = encode(frame, list(specs))
    statistics, constraints = [], []
    for j, spec in enumerate(specs):
        name = column_name(j)
        if spec.is_categorical:
            stats, rule = _text_feature(name, frame[spec.name], spec)
        elif spec.dtype == "bool":
            # pandas writes a bool column as True and False (the service reads them), which
            # the analyzer types as text: its Boolean pattern is lower-case only, and the
            # documented types have no Boolean. Both values are in the domain.
            stats, rule = _text_feature(name, frame[spec.name], spec)
            rule["string_constraints"] = {"domains": list(BOOLEAN_DOMAIN)}
        else:
            kind = "Fractional" if spec.dtype == "float64" else "Integral"
            stats, rule = _number_feature(name, kind, X[:, j])
        statistics.append(stats)
        constraints.append(rule)
    return Baseline(
        statistics={
            "version": FORMAT_VERSION,
            "dataset": {"item_count": len(frame)},
            "features": statistics,
        },
        constraints={
            "version": FORMAT_VERSION,
            "features": constraints,
            "monitoring_config": copy.deepcopy(MONITORING_CONFIG),
        },
    )


def _common(present: int, total: int) -> dict[str, int]:
    return {"num_present": present, "num_missing": total - present}


def _number_feature(
    name: str, kind: str, values: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    present = values[~np.isnan(values)]
    if not present.size:
        return _unknown_feature(name, values.size)
    stats = {
        "name": name,
        "inferred_type": kind,
        "numerical_statistics": {
            "common": _common(int(present.size), int(values.size)),
            "mean": float(present.mean()),
            "sum": float(present.sum()),
            "std_dev": float(present.std()),
            "min": float(present.min()),
            "max": float(present.max()),
            "distribution": distribution(present.tolist()),
        },
    }
    rule = {
        "name": name,
        "inferred_type": kind,
        "completeness": present.size / values.size,
        "num_constraints": {"is_non_negative": bool(present.min() >= 0)},
    }
    return stats, rule


def _reads_as(pattern: re.Pattern[str], text: str) -> bool:
    return bool(pattern.match(text)) and any(c.isdigit() for c in text)


def _text_type(texts: Sequence[str]) -> str:
    """How the analyzer types a column of these texts: numbers if every one reads as one."""
    if all(_reads_as(_INTEGRAL, t) for t in texts):
        return "Integral"
    if all(_reads_as(_INTEGRAL, t) or _reads_as(_FRACTIONAL, t) for t in texts):
        return "Fractional"
    return "String"


def _text_feature(
    name: str, column: pd.Series, spec: FeatureSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    present = column.notna().to_numpy() & ~column.map(missing_value).to_numpy(dtype=bool)
    texts = [category_text(v) for v in column[present].tolist()]
    if not texts:
        return _unknown_feature(name, len(column))
    kind = _text_type(texts)
    if kind != "String":
        # Categories written as numbers (codes, years): the check reads them as numbers.
        numbers = np.full(len(column), np.nan)
        numbers[present] = [float(t.replace(" ", "")) for t in texts]
        return _number_feature(name, kind, numbers)
    counts = Counter(texts)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    stats = {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": _common(len(texts), len(column)),
            "distinct_count": len(counts),
            "distribution": {
                "categorical": {
                    "buckets": [
                        {"value": value, "count": count}
                        for value, count in ranked[:MAX_CATEGORICAL_BUCKETS]
                    ]
                }
            },
        },
    }
    rule: dict[str, Any] = {
        "name": name,
        "inferred_type": "String",
        "completeness": len(texts) / len(column),
    }
    # The domain is every value seen, when the model knows them all; past the category cap
    # (an 'other' bucket) new values are expected and the model takes them, so no domain.
    if not spec.other:
        rule["string_constraints"] = {"domains": sorted(counts)}
    return stats, rule


def _unknown_feature(name: str, total: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A column without a value in the training rows: its type is unknown (Deequ's
    ``Unknown``), described as an empty text column."""
    stats = {
        "name": name,
        "inferred_type": "Unknown",
        "string_statistics": {
            "common": _common(0, total),
            "distinct_count": 0,
            "distribution": {"categorical": {"buckets": []}},
        },
    }
    return stats, {"name": name, "inferred_type": "Unknown", "completeness": 0.0}
