"""The baseline's shared names: bundle paths, bucket keys, the check's dataset format."""

from __future__ import annotations

import pytest

from core.baseline import (
    BUNDLE_CONSTRAINTS,
    BUNDLE_STATISTICS,
    baseline_keys,
    column_name,
    dataset_format,
)
from core.errors import ConfigError


def test_baseline_keys_under_a_prefix_by_bundle_file() -> None:
    keys = baseline_keys("models/current/baseline/")
    assert keys.statistics == "models/current/baseline/statistics.json"
    assert keys.constraints == "models/current/baseline/constraints.json"
    assert keys.by_bundle_file() == {
        BUNDLE_STATISTICS: keys.statistics,
        BUNDLE_CONSTRAINTS: keys.constraints,
    }
    assert (BUNDLE_STATISTICS, BUNDLE_CONSTRAINTS) == (
        "baseline/statistics.json",
        "baseline/constraints.json",
    )


@pytest.mark.parametrize("prefix", ["models/current/baseline", "/models/", "models//x/", ""])
def test_baseline_keys_refuse_what_is_not_a_key_prefix(prefix: str) -> None:
    with pytest.raises(ConfigError, match="ending in '/'"):
        baseline_keys(prefix)


def test_csv_is_read_headerless_and_named_like_spark() -> None:
    assert dataset_format("text/csv") == {"csv": {"header": False}}
    assert dataset_format("application/jsonlines") == {"json": {"lines": True}}
    assert [column_name(j) for j in range(3)] == ["_c0", "_c1", "_c2"]
