"""The data-quality baseline's shared names: where it lives in a bundle and in the bucket, and
how SageMaker Model Monitor reads the batch input it is checked against.

Training writes the baseline into the bundle (``baseline/statistics.json`` and
``baseline/constraints.json``, listed and checksummed in the manifest like every file);
``mlship publish`` copies both to the stack's ``batchBaselinePrefix``; the scheduled batch
pipeline's ``CheckInputData`` step reads them from there as its ``SuppliedBaselineStatistics``
and ``SuppliedBaselineConstraints``. The three sides take the keys from :func:`baseline_keys`
and the job's dataset format from :func:`dataset_format`, so they cannot drift apart.

Column names: the check reads the batch input as headerless CSV (the transform input has no
header row). Model Monitor's analyzer is Spark with Deequ ("Create a Baseline",
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-create-baseline.html, which also
requires the baseline and the checked data to agree in "the number and order of the
features"), and Spark names the columns of a CSV read without a header ``_c0``, ``_c1``, ...
("CSV Files", https://spark.apache.org/docs/latest/sql-data-sources-csv.html). So the baseline
names feature ``j`` of the manifest (the column order the service requires)
:func:`column_name` ``(j)``: the names the analyzer gives the checked data itself, and the
ones ``suggest_baseline`` would give the headerless training features.

Standard library only: every side imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

BASELINE_DIR = "baseline"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
# The files' names inside a bundle (and its model.tar.gz).
BUNDLE_STATISTICS = f"{BASELINE_DIR}/{STATISTICS_FILE}"
BUNDLE_CONSTRAINTS = f"{BASELINE_DIR}/{CONSTRAINTS_FILE}"
CSV = "text/csv"


@dataclass(frozen=True)
class BaselineKeys:
    """The artifact-bucket keys of a baseline under one prefix."""

    statistics: str
    constraints: str

    def by_bundle_file(self) -> dict[str, str]:
        """Each key by the bundle file it is a copy of."""
        return {BUNDLE_STATISTICS: self.statistics, BUNDLE_CONSTRAINTS: self.constraints}


def baseline_keys(prefix: str) -> BaselineKeys:
    """The keys of ``statistics.json`` and ``constraints.json`` under ``prefix``.

    Raises:
        ConfigError: ``prefix`` is not a relative key prefix ending in '/'.
    """
    if not prefix.endswith("/") or prefix.startswith("/") or "//" in prefix:
        raise ConfigError(
            f"Baseline prefix {prefix!r} is not a key prefix: give one ending in '/', without a "
            "leading '/', such as the stack's mlship:batchBaselinePrefix "
            "(models/current/baseline/)."
        )
    return BaselineKeys(
        statistics=f"{prefix}{STATISTICS_FILE}", constraints=f"{prefix}{CONSTRAINTS_FILE}"
    )


def dataset_format(content_type: str) -> dict[str, Any]:
    """Model Monitor's ``dataset_format`` for the batch input: headerless CSV (the transform
    input has no header row) or JSON Lines."""
    if content_type == CSV:
        return {"csv": {"header": False}}
    return {"json": {"lines": True}}


def column_name(position: int) -> str:
    """The name Model Monitor (Spark) gives column ``position`` of a headerless CSV."""
    return f"_c{position}"
