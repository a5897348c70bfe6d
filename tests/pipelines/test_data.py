"""Data: the bundled CSV, reading local and s3:// files, and every bad-input error."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from cli.main import main as mlship
from core.errors import DataError
from core.s3 import S3Error
from pipelines.data import materialise, read_table, split_xy
from tests.pipelines.conftest import WriteParams


def test_materialise_breast_cancer_is_deterministic_csv(tmp_path: Path) -> None:
    first = materialise("breast_cancer", tmp_path / "a.csv")
    second = materialise("breast_cancer", tmp_path / "b" / "c.csv")
    assert first.read_bytes() == second.read_bytes()
    frame = pd.read_csv(first)
    assert frame.shape == (569, 31)
    assert frame.columns[-1] == "target"
    assert "mean_radius" in frame.columns
    assert not any(" " in c for c in frame.columns)
    assert sorted(frame["target"].unique().tolist()) == [0, 1]


def test_read_table_hashes_file_bytes_and_reads_parquet(
    breast_cancer_csv: Path, tmp_path: Path
) -> None:
    csv = read_table(breast_cancer_csv)
    assert csv.sha256 == hashlib.sha256(breast_cancer_csv.read_bytes()).hexdigest()
    parquet_path = tmp_path / "data.parquet"
    csv.frame.to_parquet(parquet_path)
    parquet = read_table(parquet_path)
    pd.testing.assert_frame_equal(parquet.frame, csv.frame)
    assert parquet.sha256 == hashlib.sha256(parquet_path.read_bytes()).hexdigest()


def test_read_table_from_s3(aws: str, breast_cancer_csv: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="training")
    s3.upload_file(str(breast_cancer_csv), "training", "sets/bc.csv")
    remote = read_table("s3://training/sets/bc.csv")
    local = read_table(breast_cancer_csv)
    pd.testing.assert_frame_equal(remote.frame, local.frame)
    assert remote.sha256 == local.sha256
    assert remote.source == "s3://training/sets/bc.csv"


def test_read_table_records_the_s3_version_it_read(aws: str, breast_cancer_csv: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="training")
    s3.put_bucket_versioning(Bucket="training", VersioningConfiguration={"Status": "Enabled"})
    first_id = s3.put_object(
        Bucket="training", Key="data/bc.csv", Body=breast_cancer_csv.read_bytes()
    )["VersionId"]
    first = read_table("s3://training/data/bc.csv")
    assert first.version == f"s3:{first_id}"
    fewer = b"".join(breast_cancer_csv.read_bytes().splitlines(keepends=True)[:200])
    second_id = s3.put_object(Bucket="training", Key="data/bc.csv", Body=fewer)["VersionId"]
    second = read_table("s3://training/data/bc.csv")
    assert second.version == f"s3:{second_id}" != first.version
    assert len(second.frame) == 199
    assert second.sha256 == hashlib.sha256(fewer).hexdigest()


def test_read_table_version_is_the_sha256_without_s3_versioning(
    aws: str, breast_cancer_csv: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="plain")
    s3.upload_file(str(breast_cancer_csv), "plain", "bc.csv")
    digest = hashlib.sha256(breast_cancer_csv.read_bytes()).hexdigest()
    assert read_table("s3://plain/bc.csv").version == f"sha256:{digest}"
    assert read_table(breast_cancer_csv).version == f"sha256:{digest}"


def test_train_from_s3_data(aws: str, breast_cancer_csv: Path, write_params: WriteParams) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="training")
    s3.upload_file(str(breast_cancer_csv), "training", "bc.csv")
    params = write_params(registry={"enabled": False})
    code = mlship(["train", "--data", "s3://training/bc.csv", "--params", str(params)])
    assert code == 0
    assert (params.parent / "out" / "bundle" / "model.tar.gz").is_file()


def test_read_table_missing_s3_object_names_uri(aws: str) -> None:
    boto3.client("s3").create_bucket(Bucket="training")
    with pytest.raises(S3Error, match=r"Could not download s3://training/nope\.csv"):
        read_table("s3://training/nope.csv")


def _train_error(
    capsys: pytest.CaptureFixture[str], params: Path, data: Path | None = None
) -> tuple[int, str]:
    argv = ["train", "--params", str(params)]
    if data is not None:
        argv += ["--data", str(data)]
    code = mlship(argv)
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    return code, err


def _assert_nothing_written(params: Path) -> None:
    out = params.parent / "out"
    assert not out.exists() or list(out.iterdir()) == []


def test_missing_own_data_file_is_not_replaced_by_builtin(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    params = write_params(data={"path": str(tmp_path / "mine.csv"), "builtin": "breast_cancer"})
    code, err = _train_error(capsys, params)
    assert code == 1
    assert "mine.csv does not exist" in err
    assert not (tmp_path / "mine.csv").exists()


def test_missing_file_error(capsys: pytest.CaptureFixture[str], write_params: WriteParams) -> None:
    params = write_params()
    code, err = _train_error(capsys, params, params.parent / "nope.csv")
    assert code == 1
    assert "nope.csv does not exist" in err
    assert "--data" in err
    _assert_nothing_written(params)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "data.json",
            b"{}",
            r"mlship reads CSV \(\.csv, \.csv\.gz\) and Parquet \(\.parquet, \.pq\) files",
        ),
        ("data.parquet", b"not parquet at all", "Cannot read .* as Parquet"),
        ("data.csv", b"", "is empty: it has no header and no rows"),
    ],
)
def test_unreadable_file_error(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    tmp_path: Path,
    name: str,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, err = _train_error(capsys, write_params(), path)
    assert code == 1
    assert re.search(message, err), err


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_separated_by_something_else_is_named(
    breast_cancer_csv: Path, tmp_path: Path, separator: str, name: str
) -> None:
    path = tmp_path / "export.csv"
    pd.read_csv(breast_cancer_csv).head(50).to_csv(path, sep=separator, decimal=",", index=False)

    with pytest.raises(DataError) as e:
        read_table(str(path))

    header = repr(f"mean_radius{separator}mean_texture")[:-1]  # as the message quotes it
    assert str(e.value).startswith(f"{path} has a single column, {header}")
    assert f"separated by {name}, and mlship reads comma-separated CSV" in str(e.value)


def test_misspelled_target_suggests_closest(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams
) -> None:
    params = write_params(data={"target": "targt"})
    code, err = _train_error(capsys, params)
    assert code == 1
    assert "no target column 'targt'" in err
    assert "Did you mean 'target'?" in err
    assert "data.target" in err
    _assert_nothing_written(params)


def test_unrelated_target_lists_columns(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    with pytest.raises(DataError, match=r"The columns are: mean_radius, mean_texture"):
        split_xy(frame, "diagnosis_label_xyz", "classification")


def test_feature_types_come_from_the_columns_not_their_values(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame.insert(0, "colour", ["red", "blue"] * (len(frame) // 2) + ["red"])
    frame.insert(1, "whole", [float(i % 7) for i in range(len(frame))])  # floats, all whole
    frame.insert(2, "count", list(range(len(frame))))
    frame.insert(3, "flag", [i % 2 == 0 for i in range(len(frame))])

    xy = split_xy(frame, "target", "classification")
    declared = split_xy(frame, "target", "classification", declared={"count": "category"})

    assert [xy.dtypes[c] for c in ("colour", "whole", "count", "flag")] == [
        "category",
        "float64",
        "int64",
        "bool",
    ]
    assert declared.dtypes["count"] == "category"


def test_excluded_columns_are_not_features(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame.insert(0, "customer_id", range(len(frame)))
    frame.insert(1, "exported_at", ["2026-11-30T10:00:00Z"] * len(frame))

    xy = split_xy(frame, "target", "classification", exclude=["customer_id", "exported_at"])

    assert list(xy.features.columns) == [
        c for c in frame.columns if c not in ("customer_id", "exported_at", "target")
    ]


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        (
            ["customerid"],
            "params.yaml data.exclude lists 'customerid', which is not a column of the data. "
            "Did you mean 'customer_id'? Fix the name or remove the entry.",
        ),
        (
            ["target"],
            "params.yaml data.exclude lists the target column 'target'; the target is never a "
            "feature. Remove it from data.exclude.",
        ),
        (
            ["customer_id", "x"],
            "the data has no feature columns left after data.exclude, only the target column "
            "'target'. Add the input columns the model should learn from.",
        ),
    ],
)
def test_a_wrong_exclusion_is_named(exclude: list[str], message: str) -> None:
    frame = pd.DataFrame(
        {"customer_id": [1, 2, 3, 4], "x": [0.1, 0.2, 0.3, 0.4], "target": [0, 1] * 2}
    )

    with pytest.raises(DataError) as e:
        split_xy(frame, "target", "classification", exclude=exclude)

    assert str(e.value) == message


def test_declared_type_for_an_unknown_column_names_the_closest(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)

    with pytest.raises(DataError) as e:
        split_xy(frame, "target", "classification", declared={"mean_radus": "category"})

    assert str(e.value) == (
        "params.yaml data.features declares 'mean_radus', which is not a feature column of "
        "the data. Did you mean 'mean_radius'? Fix the name or remove the entry."
    )


def test_a_column_with_no_values_is_refused_by_name(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame["empty"] = None

    with pytest.raises(DataError, match=r"^the data: feature column\(s\) 'empty' have no values"):
        split_xy(frame, "target", "classification")


def test_header_only_data_error(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    breast_cancer_csv: Path,
    tmp_path: Path,
) -> None:
    path = tmp_path / "header.csv"
    path.write_text(breast_cancer_csv.read_text().splitlines()[0] + "\n")
    code, err = _train_error(capsys, write_params(), path)
    assert code == 1
    assert "has a header but no rows" in err


def test_single_class_error(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    breast_cancer_csv: Path,
    tmp_path: Path,
) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    path = tmp_path / "benign.csv"
    frame[frame["target"] == 1].to_csv(path, index=False)
    params = write_params()
    code, err = _train_error(capsys, params, path)
    assert code == 1
    assert "has a single class (1)" in err
    assert "at least two classes" in err
    _assert_nothing_written(params)


def test_unlabelled_rows_error(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame.loc[[3, 7], "target"] = None
    with pytest.raises(DataError, match=r"2 row\(s\) have no value in the target column"):
        split_xy(frame, "target", "classification")


def test_string_labels_become_classes(breast_cancer_csv: Path) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    xy = split_xy(frame, "target", "classification")
    assert xy.classes == ["benign", "malignant"]
    assert xy.features.shape == (569, 30)
    with pytest.raises(
        DataError, match=r"not numeric, but the model in params\.yaml is a regressor"
    ):
        split_xy(frame, "target", "regression")


def test_date_and_time_columns_are_refused_with_the_way_out(tmp_path: Path) -> None:
    """A Parquet export keeps its timestamps typed: as categories each moment was a category
    of its own (and read back as other text at the endpoint). They are named with the fix;
    left out as the message says, the table trains."""
    n = 40
    frame = pd.DataFrame(
        {
            "signed_up": pd.date_range("2026-01-01", periods=n, freq="D"),
            "x": [i / 10 for i in range(n)],
            "last_seen": pd.date_range("2026-06-01", periods=n, freq="h", tz="Europe/Paris"),
            "tenure": pd.to_timedelta(range(n), unit="D"),
            "target": [0, 1] * (n // 2),
        }
    )
    frame.to_parquet(tmp_path / "export.parquet")
    table = read_table(tmp_path / "export.parquet").frame

    with pytest.raises(DataError) as e:
        split_xy(table, "target", "classification", source="export.parquet")

    message = str(e.value)
    assert message.startswith(
        "export.parquet: feature column(s) 'signed_up' (datetime64[ns]), 'last_seen' "
        "(datetime64[ns, Europe/Paris]), 'tenure' (timedelta64[ns]) hold dates or times"
    )
    exclude = re.search(r"data\.exclude=\[(.*)\]", message)
    assert exclude is not None
    xy = split_xy(table, "target", "classification", exclude=exclude.group(1).split(", "))
    assert list(xy.features.columns) == ["x"]


def _training_notes(tmp_path: Path, columns: dict[str, Any]) -> list[str]:
    """What training notes of a 60-row CSV export of ``columns``, beside a plain text column
    and a target."""
    from pipelines.profile import profile

    pd.DataFrame({**columns, "plan": ["basic", "pro", "team"] * 20, "target": [0, 1] * 30}).to_csv(
        tmp_path / "export.csv", index=False
    )
    xy = split_xy(read_table(tmp_path / "export.csv").frame, "target", "classification")
    notes: list[str] = []
    profile(xy.features, xy.dtypes, say=notes.append)
    return notes


def test_dates_written_as_text_are_noted(tmp_path: Path) -> None:
    """In a CSV the same dates are text, a category each: consistent at the endpoint, but
    a later date is never one the model saw. Training notes the column (and not a text
    column that merely holds a few dates, such as a plan's start)."""
    n = 60
    notes = _training_notes(
        tmp_path,
        {
            "signed_up": pd.date_range("2026-01-01", periods=n, freq="D").astype(str),
            "seen_at": [f"2026-06-{1 + i // 24:02d}T{i % 24:02d}:15:00Z" for i in range(n)],
            "cohort": ["2026-01-01", "2026-02-01"] * (n // 2),
        },
    )

    assert not [n for n in notes if "identifier" in n]  # the date is the more useful note
    assert [n for n in notes if "dates" in n] == [
        f"note: column {name!r} holds dates or times as text, so each one is a category of its "
        "own and a later date is never seen in training; derive the numbers the model should "
        f"learn from (days since, month, weekday), or leave it out: --set "
        f"'data.exclude=[{name}]'"
        for name in ("signed_up", "seen_at")
    ]


def test_text_labels_are_trimmed_as_categories_are() -> None:
    """A Parquet export keeps its padding (a CSV's cells are read trimmed): 'yes ' and 'yes'
    are one class, as a padded category is its trimmed text."""
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "label": ["yes", "yes   ", " no", "no"]})

    xy = split_xy(frame, "label", "classification")

    assert xy.classes == ["no", "yes"]
    assert xy.y.tolist() == ["yes", "yes", "no", "no"]
    with pytest.raises(DataError, match=r"has a single class \('yes'\)"):
        split_xy(frame.assign(label=["yes", "yes ", " yes", "yes"]), "label", "classification")


def test_numbers_formatted_as_text_are_noted(tmp_path: Path) -> None:
    """A spreadsheet export writes amounts as it shows them ('$1,234.50', '12%'): pandas
    reads them as text, a category each. Training names the column and a value; plain
    numbers and real text are left alone."""
    n = 60
    notes = _training_notes(
        tmp_path,
        {
            "amount": [f"${900 + 37.5 * i:,.2f}" for i in range(n)],
            "share": [f"{i % 40}%" for i in range(n)],
            "plain": [0.5 * i for i in range(n)],
        },
    )

    assert [n for n in notes if "numbers written as text" in n] == [
        "note: column 'amount' holds numbers written as text ('$900.00'), so each one is a "
        "category of its own; export them as plain numbers (no thousands separators, currency "
        "or percent signs)",
        "note: column 'share' holds numbers written as text ('0%'), so each one is a category "
        "of its own; export them as plain numbers (no thousands separators, currency or "
        "percent signs)",
    ]


def test_a_column_of_empty_text_has_no_values() -> None:
    """A Parquet export's column of '' (a field nobody fills in) is all gaps, refused as a
    column of nulls is, instead of a categorical feature with no category."""
    frame = pd.DataFrame(
        {"x": [0.1, 0.2, 0.3, 0.4], "note": ["", "  ", "", ""], "gone": [None] * 4, "y": [0, 1] * 2}
    )

    with pytest.raises(DataError) as e:
        split_xy(frame, "y", "classification")

    assert str(e.value).startswith(
        "the data: feature column(s) 'note', 'gone' have no values at all"
    )
