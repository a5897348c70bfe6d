"""The data-quality baseline training writes: Model Monitor's documented formats, numbers equal
to a direct computation on the training rows, features named as the batch check reads them.

The formats are the SageMaker developer guide's "Schema for Statistics (statistics.json file)"
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html) and
"Schema for Constraints (constraints.json file)"
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html), written
as JSON Schemas in ``tests/pipelines/fixtures/``. The KLL sketch follows Deequ's
``QuantileNonSample`` and ``KLLSketch``
(https://github.com/awslabs/deequ/tree/master/src/main/scala/com/amazon/deequ/analyzers).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
import yaml

from core.baseline import BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS
from core.bundle import ARCHIVE_NAME, load_bundle
from core.files import sha256_file
from core.manifest import Dtype
from pipelines.baseline import MONITORING_CONFIG, Baseline, data_quality_baseline
from pipelines.kll import BUCKETS, capacity, sketch
from pipelines.params import load_params
from pipelines.profile import profile
from pipelines.train import train

FIXTURES = Path(__file__).parent / "fixtures"


def _validator(name: str) -> Any:
    schema = json.loads((FIXTURES / f"model-monitor-{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


STATISTICS = _validator("statistics")
CONSTRAINTS = _validator("constraints")


def _errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, dict[str, Dtype]]:
    """Training rows with every kind of column: negative floats with gaps, integers,
    booleans, text with gaps, text past the category cap, and codes written as numbers."""
    rng = np.random.default_rng(7)
    n = 3000  # past the sketch's first level (2050 values): compaction is exercised
    temperature = rng.normal(-2.0, 5.0, n)
    temperature[rng.choice(n, 120, replace=False)] = np.nan
    frame = pd.DataFrame(
        {
            "temperature": temperature,
            "visits": rng.integers(0, 40, n),
            "member": rng.random(n) < 0.3,
            "colour": pd.Series(rng.choice(["red", "green", "blue"], n), dtype=object),
            "city": pd.Series([f"city-{i % 60:02d}" for i in range(n)], dtype=object),
            "region_code": pd.Series(rng.choice(["10", "20", "30"], n), dtype=object),
        }
    )
    frame.loc[rng.choice(n, 300, replace=False), "colour"] = None
    dtypes: dict[str, Dtype] = {
        "temperature": "float64",
        "visits": "int64",
        "member": "bool",
        "colour": "category",
        "city": "category",
        "region_code": "category",
    }
    return frame, dtypes


@pytest.fixture(scope="module")
def baseline(table: tuple[pd.DataFrame, dict[str, Dtype]]) -> Baseline:
    frame, dtypes = table
    specs, _ = profile(frame, dtypes, max_categories=20)
    return data_quality_baseline(frame, specs)


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in doc["features"]}


def test_baseline_names_features_as_the_headerless_csv_check_reads_them(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    expected = [f"_c{j}" for j in range(frame.shape[1])]  # column j of the CSV, manifest order
    assert [f["name"] for f in baseline.statistics["features"]] == expected
    assert [f["name"] for f in baseline.constraints["features"]] == expected
    assert baseline.statistics["dataset"] == {"item_count": len(frame)}
    assert baseline.statistics["version"] == 0 and baseline.constraints["version"] == 0


def test_baseline_documents_validate_against_the_documented_schemas(baseline: Baseline) -> None:
    assert _errors(STATISTICS, baseline.statistics) == []
    assert _errors(CONSTRAINTS, baseline.constraints) == []
    # JSON as written: no NaN or infinity (the analyzer's JSON parser refuses them)
    json.dumps(baseline.statistics, allow_nan=False)
    json.dumps(baseline.constraints, allow_nan=False)


@pytest.mark.parametrize(
    ("document", "path", "value", "message"),
    [
        ("statistics", ["features", 0, "inferred_type"], "Float", "is not one of"),
        ("statistics", ["features", 0, "numerical_statistics", "mean"], "1.5", "is not of type"),
        ("statistics", ["dataset", "item_count"], -1, "less than the minimum"),
        ("constraints", ["features", 0, "completeness"], 1.2, "greater than the maximum"),
        ("constraints", ["features", 0, "num_constraints", "is_non_negative"], 0, "boolean"),
        ("constraints", ["features", 3, "string_constraints", "domains"], "red", "array"),
        (
            "constraints",
            ["monitoring_config", "distribution_constraints", "comparison_method"],
            "Exact",
            "is not one of",
        ),
        ("constraints", ["monitoring_config", "emit_metrics"], True, "is not one of"),
    ],
)
def test_the_schemas_refuse_a_wrong_type_or_value(
    baseline: Baseline, document: str, path: list[Any], value: Any, message: str
) -> None:
    doc = copy.deepcopy(getattr(baseline, document))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = _errors(STATISTICS if document == "statistics" else CONSTRAINTS, doc)
    assert errors and any(message in e for e in errors), errors


def test_the_schemas_refuse_a_misspelt_or_missing_member(baseline: Baseline) -> None:
    stats = copy.deepcopy(baseline.statistics)
    numbers = stats["features"][0]["numerical_statistics"]
    numbers["std_deviation"] = numbers.pop("std_dev")
    assert any("std_dev" in e for e in _errors(STATISTICS, stats))
    rules = copy.deepcopy(baseline.constraints)
    rules["monitoring_config"]["distribution_constraints"]["comparion_method"] = "Simple"
    assert _errors(CONSTRAINTS, rules)


def test_numbers_equal_a_direct_computation(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    stats, rules = _by_name(baseline.statistics), _by_name(baseline.constraints)
    for j, column in enumerate(["temperature", "visits"]):
        values = frame[column].astype(float)
        present = values.dropna()
        got = stats[f"_c{j}"]["numerical_statistics"]
        assert got["common"] == {
            "num_present": int(present.size),
            "num_missing": int(values.isna().sum()),
        }
        assert got["mean"] == pytest.approx(present.mean(), rel=1e-12)
        assert got["sum"] == pytest.approx(present.sum(), rel=1e-12)
        assert got["std_dev"] == pytest.approx(present.std(ddof=0), rel=1e-12)  # Deequ: population
        assert (got["min"], got["max"]) == (present.min(), present.max())
        assert rules[f"_c{j}"]["completeness"] == present.size / len(frame)
        assert rules[f"_c{j}"]["num_constraints"] == {"is_non_negative": bool(present.min() >= 0)}
    assert stats["_c0"]["inferred_type"] == "Fractional"
    assert stats["_c1"]["inferred_type"] == "Integral"
    # a bool column is text to the check, as pandas writes it (tests/world/test_flags.py)
    member = stats["_c2"]["string_statistics"]
    assert member["common"] == {"num_present": len(frame), "num_missing": 0}
    assert {b["value"]: b["count"] for b in member["distribution"]["categorical"]["buckets"]} == {
        str(v): int(c) for v, c in frame["member"].value_counts().items()
    }
    assert rules["_c2"]["string_constraints"] == {"domains": ["False", "True"]}
    assert rules["_c0"]["num_constraints"] == {"is_non_negative": False}
    assert rules["_c0"]["completeness"] < 1.0  # the column with gaps


def test_a_text_column_gets_string_statistics_and_a_domain(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    colour = frame["colour"]
    got = _by_name(baseline.statistics)["_c3"]
    assert got["inferred_type"] == "String"
    assert "numerical_statistics" not in got
    strings = got["string_statistics"]
    assert strings["common"] == {
        "num_present": int(colour.notna().sum()),
        "num_missing": int(colour.isna().sum()),
    }
    assert strings["distinct_count"] == colour.nunique() == 3
    counts = colour.value_counts()
    assert {b["value"]: b["count"] for b in strings["distribution"]["categorical"]["buckets"]} == (
        counts.to_dict()
    )
    rule = _by_name(baseline.constraints)["_c3"]
    assert rule["inferred_type"] == "String"
    assert rule["string_constraints"] == {"domains": ["blue", "green", "red"]}
    assert rule["completeness"] == colour.notna().sum() / len(frame) < 1.0
    assert "num_constraints" not in rule


def test_text_past_the_category_cap_has_no_domain(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    strings = _by_name(baseline.statistics)["_c4"]["string_statistics"]
    assert strings["distinct_count"] == frame["city"].nunique() == 60
    # the model lumps the values past the cap into 'other' and takes new ones: no domain
    rule = _by_name(baseline.constraints)["_c4"]
    assert rule["completeness"] == 1.0
    assert "string_constraints" not in rule


def test_categories_written_as_numbers_are_numbers_to_the_check(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    got = _by_name(baseline.statistics)["_c5"]
    assert got["inferred_type"] == "Integral"
    codes = frame["region_code"].astype(float)
    assert got["numerical_statistics"]["mean"] == pytest.approx(codes.mean(), rel=1e-12)
    assert _by_name(baseline.constraints)["_c5"]["num_constraints"] == {"is_non_negative": True}


def test_monitoring_config_checks_the_data_contract_not_drift(baseline: Baseline) -> None:
    config = baseline.constraints["monitoring_config"]
    assert config == MONITORING_CONFIG
    assert config["evaluate_constraints"] == "Enabled"
    assert config["datatype_check_threshold"] == config["domain_content_threshold"] == 1.0
    assert config["distribution_constraints"]["perform_comparison"] == "Disabled"


def test_sketch_keeps_every_value_until_its_first_level_is_full() -> None:
    values = [float(v) for v in np.random.default_rng(1).normal(size=capacity(0))]
    assert sketch(values) == [values]
    assert capacity(0) == 2050  # Deequ: 2 * (ceil(2048 * 0.64**0 / 2) + 1)


@pytest.mark.parametrize("n", [1, 7, 2050, 2051, 5000, 40_000])
def test_sketch_weights_add_up_to_the_count(n: int) -> None:
    values = np.random.default_rng(n).exponential(size=n).tolist()
    data = sketch(values)
    # an item at level h stands for 2**h values; compaction keeps the total weight
    assert sum(len(level) * 2**h for h, level in enumerate(data)) == n
    assert len(data) == 1 or len(data[0]) < len(values)


def test_kll_buckets_are_ten_equal_widths_with_exact_counts_below_the_first_compaction(
    table: tuple[pd.DataFrame, dict[str, Dtype]], baseline: Baseline
) -> None:
    frame, _ = table
    visits = frame["visits"].astype(float).head(2000)
    few = data_quality_baseline(
        frame[["visits"]].head(2000), profile(frame[["visits"]].head(2000), {"visits": "int64"})[0]
    )
    kll = few.statistics["features"][0]["numerical_statistics"]["distribution"]["kll"]
    low, high = visits.min(), visits.max()
    assert len(kll["buckets"]) == BUCKETS
    assert [b["lower_bound"] for b in kll["buckets"]] == [
        low + (high - low) * i / BUCKETS for i in range(BUCKETS)
    ]
    assert kll["buckets"][-1]["upper_bound"] == high
    # [lower, upper) each, the last one [lower, upper]: a histogram over the same edges
    edges = [b["lower_bound"] for b in kll["buckets"]] + [high]
    expected, _ = np.histogram(visits, bins=edges)
    assert [b["count"] for b in kll["buckets"]] == expected.tolist()
    assert kll["sketch"] == {"parameters": {"c": 0.64, "k": 2048.0}, "data": [visits.tolist()]}
    # past the first compaction the counts come from the sketch and still add up
    many = _by_name(baseline.statistics)["_c1"]["numerical_statistics"]
    assert sum(b["count"] for b in many["distribution"]["kll"]["buckets"]) == len(frame)


def test_penguins_bundle_carries_a_verified_baseline_matching_its_manifest(
    tmp_path: Path,
) -> None:
    """A real table (text features, missing values) trained end to end."""
    from palmerpenguins import load_penguins

    frame: pd.DataFrame = load_penguins()
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    raw = {
        "name": "penguins",
        "data": {
            "path": str(tmp_path / "penguins.csv"),
            "target": "species",
            "builtin": None,
            "expectations": None,
        },
        "model": {"type": "logistic_regression", "hyperparameters": {}},
        "gate": {"thresholds": {}},
        "output": {"dir": str(tmp_path / "bundle"), "metrics": None, "onnx": False},
        "registry": {"enabled": False},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = train(load_params(tmp_path / "params.yaml"), say=lambda _: None)

    bundle = load_bundle(result.bundle_dir / ARCHIVE_NAME)  # verified, from the archive too
    manifest = bundle.manifest
    for name in (BUNDLE_STATISTICS, BUNDLE_CONSTRAINTS):
        assert manifest.files[name] == sha256_file(result.bundle_dir / name)
    stats = json.loads((result.bundle_dir / BUNDLE_STATISTICS).read_text())
    rules = json.loads((result.bundle_dir / BUNDLE_CONSTRAINTS).read_text())
    assert _errors(STATISTICS, stats) == []
    assert _errors(CONSTRAINTS, rules) == []

    rows = stats["dataset"]["item_count"]
    assert 0 < rows < len(frame)  # the training rows only
    for j, spec in enumerate(manifest.features):
        got, rule = stats["features"][j], rules["features"][j]
        assert got["name"] == rule["name"] == f"_c{j}"
        assert (rule["completeness"] < 1.0) == spec.nullable, spec.name
        if spec.is_categorical:
            assert got["inferred_type"] == "String", spec.name
            assert rule["string_constraints"]["domains"] == sorted(spec.categories or [])
        else:
            numbers = got["numerical_statistics"]
            assert (numbers["min"], numbers["max"]) == (spec.min, spec.max), spec.name
            assert sum(numbers["common"].values()) == rows
            expected = "Fractional" if spec.dtype == "float64" else "Integral"
            assert got["inferred_type"] == expected, spec.name
    by_feature = dict(zip(manifest.feature_names, stats["features"], strict=True))
    assert by_feature["sex"]["string_statistics"]["common"]["num_missing"] > 0
    assert by_feature["year"]["inferred_type"] == "Integral"
