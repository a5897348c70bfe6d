"""Batch scoring: same predictions as in-process, chunked, atomic output, clear errors."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cli.main import main
from core.errors import DataError, InvalidInput
from core.model import Model, Prediction, load_model
from core.s3 import s3_client
from pipelines.batch import score_file
from tests.compare import assert_same_prediction


def write_input(path: Path, model: Model, X: np.ndarray, with_id: bool = True) -> Path:
    columns: dict[str, object] = {}
    if with_id:
        columns["id"] = pa.array([f"row-{i}" for i in range(len(X))])
    for j, name in enumerate(model.feature_names):
        columns[name] = pa.array(X[:, j])
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=50)
    else:
        pacsv.write_csv(table, path)
    return path


def read_output(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)


def output_prediction(model: Model, table: pa.Table) -> Prediction:
    labels = table.column("prediction").to_numpy()
    if model.classes is None:
        return Prediction(labels=labels, probabilities=None)
    proba = np.column_stack([table.column(f"proba_{c}").to_numpy() for c in model.classes])
    return Prediction(labels=labels, probabilities=proba)


def _files(folder: Path) -> list[str]:
    """What a run left in ``folder``, besides the per-test MLflow store of the conftest."""
    return sorted(p.name for p in folder.iterdir() if p.name != "mlflow")


@pytest.mark.parametrize(("suffix_in", "suffix_out"), [(".csv", ".parquet"), (".parquet", ".csv")])
@pytest.mark.parametrize("kind", ["logistic", "forest", "regression"])
def test_batch_scoring_equals_in_process_predictions_on_the_test_split(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, suffix_in: str, suffix_out: str
) -> None:
    model: Model = request.getfixturevalue(f"{kind}_model")
    X: np.ndarray = request.getfixturevalue(f"{kind}_X")
    src = write_input(tmp_path / f"in{suffix_in}", model, X)
    dst = tmp_path / f"out{suffix_out}"

    result = score_file(model, str(src), str(dst), chunk_rows=17)

    out = read_output(dst)
    assert result.rows == len(X) == out.num_rows
    assert out.column("id").to_pylist() == [f"row-{i}" for i in range(len(X))]
    # CSV stores floats as shortest round-trip text, so values come back exactly.
    assert_same_prediction(output_prediction(model, out), model.predict(X))
    assert _files(tmp_path) == sorted([src.name, dst.name])


def test_batch_scoring_without_id_column_writes_predictions_only(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    src = write_input(tmp_path / "in.csv", logistic_model, logistic_X, with_id=False)

    score_file(logistic_model, str(src), str(tmp_path / "out.csv"), chunk_rows=1000)

    out = read_output(tmp_path / "out.csv")
    assert out.column_names == ["prediction", "proba_0", "proba_1"]


def test_batch_scoring_keeps_a_chosen_id_column(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    table = pa.table(
        {"customer": list(range(len(logistic_X)))}
        | {n: logistic_X[:, j] for j, n in enumerate(logistic_model.feature_names)}
    )
    pq.write_table(table, tmp_path / "in.parquet")

    score_file(
        logistic_model,
        str(tmp_path / "in.parquet"),
        str(tmp_path / "out.parquet"),
        id_column="customer",
    )

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("customer").to_pylist() == list(range(len(logistic_X)))


def test_batch_scoring_decodes_only_the_parquet_columns_it_uses(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    """A wide table's other columns are never decoded: here one of them is damaged on disk
    (every byte of its column chunks overwritten), which any read of it would fail on."""
    src = tmp_path / "in.parquet"
    table = pa.table(
        {"id": [f"row-{i}" for i in range(len(logistic_X))]}
        | {n: logistic_X[:, j] for j, n in enumerate(logistic_model.feature_names)}
        | {"notes": [f"free text {i} " * 20 for i in range(len(logistic_X))]}
    )
    pq.write_table(table, src, row_group_size=50, compression="none")
    _damage(src, table.column_names.index("notes"))
    with pytest.raises(OSError):
        pq.read_table(src, columns=["notes"])  # damaged indeed

    score_file(logistic_model, str(src), str(tmp_path / "out.parquet"), chunk_rows=60)

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == [f"row-{i}" for i in range(len(logistic_X))]
    assert_same_prediction(
        output_prediction(logistic_model, out), logistic_model.predict(logistic_X)
    )


def _damage(path: Path, column: int, first_group: int = 0) -> None:
    """Overwrite every byte of ``column``'s chunks from row group ``first_group`` on."""
    metadata = pq.ParquetFile(path).metadata
    data = bytearray(path.read_bytes())
    for g in range(first_group, metadata.num_row_groups):
        chunk = metadata.row_group(g).column(column)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(data))


def test_batch_scoring_names_a_damaged_parquet_file_and_writes_nothing(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    src = write_input(tmp_path / "in.parquet", logistic_model, logistic_X)  # 50-row groups
    _damage(src, column=4, first_group=2)  # a feature, from row 100 on

    with pytest.raises(DataError, match=r"in\.parquet cannot be read after its first 100 rows"):
        score_file(logistic_model, str(src), str(tmp_path / "out.parquet"), chunk_rows=50)

    assert _files(tmp_path) == ["in.parquet"]


def test_batch_scoring_missing_feature_names_the_closest_column(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    src = write_input(tmp_path / "in.csv", logistic_model, logistic_X)
    text = src.read_text().replace("mean_radius", "mean_radious", 1)
    src.write_text(text)

    with pytest.raises(DataError) as e:
        score_file(logistic_model, str(src), str(tmp_path / "out.csv"))

    assert str(e.value).startswith(
        "The input has no column 'mean_radius', a feature of model mlship test-logistic-0 "
        "(30 features). The closest input column is 'mean_radious'."
    )
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("separator", "decimal", "name"), [(";", ",", "semicolons"), ("\t", ".", "tabs")]
)
def test_batch_scoring_names_a_csv_separated_by_something_else(
    tmp_path: Path,
    logistic_model: Model,
    logistic_X: np.ndarray,
    separator: str,
    decimal: str,
    name: str,
) -> None:
    """An Excel export in a locale with a decimal comma separates values with semicolons
    (its decimal commas then break pyarrow's parse of the rows); a tab-separated file reads
    as one column. Both are named as what they are."""
    import pandas as pd

    src = tmp_path / "in.csv"
    frame = pd.DataFrame(logistic_X[:20], columns=logistic_model.feature_names)
    frame.to_csv(src, sep=separator, decimal=decimal, index=False)

    with pytest.raises(DataError) as e:
        score_file(logistic_model, str(src), str(tmp_path / "out.csv"))

    header = repr(f"mean_radius{separator}mean_texture")[:-1]  # as the message quotes it
    assert f"has a single column, {header}" in str(e.value)
    assert f"its values are separated by {name}, and mlship reads comma-separated CSV" in str(
        e.value
    )
    assert not (tmp_path / "out.csv").exists()


def test_batch_scoring_refuses_an_unknown_id_column(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    src = write_input(tmp_path / "in.csv", logistic_model, logistic_X)

    with pytest.raises(DataError, match="--id-column 'key' is not a column of the input"):
        score_file(logistic_model, str(src), str(tmp_path / "out.csv"), id_column="key")


# pyarrow's pool size: one thread (a machine with one CPU, or a serving worker's) words its
# parse errors with the line ("In CSV column #2: Row #4: CSV conversion error ..."), more
# threads without it; the errors read the same either way.
ARROW_THREADS = pytest.mark.parametrize("arrow_threads", [1, 2])


@ARROW_THREADS
def test_batch_scoring_refuses_a_text_feature_column(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray, arrow_threads: int
) -> None:
    pa.set_cpu_count(arrow_threads)  # restored after the test (tests/conftest.py)
    src = write_input(tmp_path / "in.csv", logistic_model, logistic_X)
    lines = src.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index('"mean_texture"')
    cells = lines[3].split(",")
    cells[col] = "high"
    lines[3] = ",".join(cells)
    src.write_text("\n".join(lines) + "\n")

    with pytest.raises(DataError, match=r"column 'mean_texture' holds a value that is not a"):
        score_file(logistic_model, str(src), str(tmp_path / "out.csv"))


@ARROW_THREADS
@pytest.mark.parametrize("cell", [" NA", "NA ", " null "])
def test_batch_scoring_reads_a_padded_null_spelling_as_missing(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray, cell: str, arrow_threads: int
) -> None:
    """As the endpoint reads the cell (trimmed): a missing value, refused by row for a model
    trained without gaps. pyarrow matches the null spellings on the untrimmed cell, and the
    number parse failed on the whole file (tests/world/test_fixed_width.py scores one)."""
    pa.set_cpu_count(arrow_threads)
    src = write_input(tmp_path / "in.csv", logistic_model, logistic_X)
    lines = src.read_text().splitlines()
    col = lines[0].split(",").index('"mean_texture"')
    cells = lines[3].split(",")
    cells[col] = cell
    lines[3] = ",".join(cells)
    src.write_text("\n".join(lines) + "\n")

    with pytest.raises(InvalidInput, match=r"'mean_texture' \(row 2\) is missing"):
        score_file(logistic_model, str(src), str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()
    assert not [p for p in tmp_path.iterdir() if "out.csv" in p.name]  # no .partial left


@pytest.mark.parametrize("changes", ["feature", "unused"])
def test_batch_scoring_reads_a_csv_whose_columns_change_shape_after_the_first_block(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray, changes: str
) -> None:
    """pyarrow infers a column's type from the first block it reads (1 MB at least here): a
    feature of whole numbers that turns fractional later, or an unused column of numeric
    codes that turns to text, failed the whole file."""
    X = np.tile(logistic_X, (90, 1))  # ~13,000 rows, ~3 MB of CSV
    X[:, 0] = np.round(X[:, 0])
    codes = [str(i) for i in range(len(X))]
    if changes == "feature":
        X[-1, 0] += 0.5  # whole numbers, then one fractional value at the end
    else:
        codes[-1] = "A-17"
    header = ",".join([*logistic_model.feature_names, "ref"])
    cells = [[repr(v) for v in row] for row in X.tolist()]
    for row in cells:  # the first feature written as whole numbers are: "13", not "13.0"
        row[0] = row[0].removesuffix(".0")
    body = "\n".join(",".join([*row, code]) for row, code in zip(cells, codes, strict=True))
    src = tmp_path / "in.csv"
    src.write_text(f"{header}\n{body}\n")

    score_file(logistic_model, str(src), str(tmp_path / "out.parquet"), chunk_rows=1000)

    out = pq.read_table(tmp_path / "out.parquet")
    assert_same_prediction(output_prediction(logistic_model, out), logistic_model.predict(X))


def test_batch_scoring_copies_csv_ids_exactly(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    """A CSV id is the text in its cell: account numbers keep their leading zeros, codes
    that turn to text after the first megabyte do not fail the file, and an id spelled like
    a null ("NA", Namibia's code) stays an id. pyarrow inferred the column's type: "00123"
    came out as 123, and a later "A-17" failed the whole file."""
    X = np.tile(logistic_X, (90, 1))  # ~13,000 rows, ~3 MB of CSV
    ids = [f"{i:06d}" for i in range(len(X))]
    ids[5], ids[-1] = "NA", "A-17"
    header = ",".join(["id", *logistic_model.feature_names])
    body = "\n".join(
        ",".join([key, *map(repr, row)]) for key, row in zip(ids, X.tolist(), strict=True)
    )
    src = tmp_path / "in.csv"
    src.write_text(f"{header}\n{body}\n")

    score_file(logistic_model, str(src), str(tmp_path / "out.parquet"), chunk_rows=1000)

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == ids
    assert_same_prediction(output_prediction(logistic_model, out), logistic_model.predict(X))


def test_batch_scoring_failure_midway_leaves_no_output_and_no_temporary_file(
    tmp_path: Path, forest_model: Model, forest_X: np.ndarray
) -> None:
    X = forest_X.copy()
    X[100, 4] = np.nan  # the forest was trained without missing values
    src = write_input(tmp_path / "in.parquet", forest_model, X)
    dst = tmp_path / "out.parquet"

    with pytest.raises(DataError) as e:
        score_file(forest_model, str(src), str(dst), chunk_rows=30)

    # the service's message for the same value (core.features), with the file's row number
    assert str(e.value) == (
        "feature 'mean_smoothness' (row 100) is missing (null or NaN), but the model was "
        "trained without missing values for it; send a number."
    )
    assert _files(tmp_path) == ["in.parquet"]


def test_batch_scoring_refuses_infinite_values_and_unknown_formats(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    X = logistic_X.copy()
    X[7, 0] = np.inf
    src = write_input(tmp_path / "in.parquet", logistic_model, X)

    with pytest.raises(DataError, match=r"^feature 'mean_radius' \(row 7\) is infinite"):
        score_file(logistic_model, str(src), str(tmp_path / "out.parquet"))
    with pytest.raises(DataError, match=r"out\.json: unknown file type"):
        score_file(logistic_model, str(src), str(tmp_path / "out.json"))


def test_mlship_predict_cli_scores_s3_input_to_s3_output(
    aws: str,
    tmp_path: Path,
    logistic_bundle: Path,
    logistic_X: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where downloads go
    model = load_model(logistic_bundle)
    client = s3_client()
    client.create_bucket(Bucket="scoring")
    src = write_input(tmp_path / "in.csv", model, logistic_X)
    client.upload_file(str(src), "scoring", "in/data.csv")
    client.upload_file(str(logistic_bundle / "model.tar.gz"), "scoring", "model/model.tar.gz")

    code = main(
        [
            "predict",
            "--model",
            "s3://scoring/model/",
            "--input",
            "s3://scoring/in/data.csv",
            "--output",
            "s3://scoring/out/scores.parquet",
            "--chunk-rows",
            "40",
        ]
    )

    assert code == 0
    client.download_file("scoring", "out/scores.parquet", str(tmp_path / "scores.parquet"))
    out = pq.read_table(tmp_path / "scores.parquet")
    assert_same_prediction(output_prediction(model, out), model.predict(logistic_X))
    assert list(temp.iterdir()) == []  # the downloaded bundle and its extraction are gone


def test_mlship_predict_cli_reports_a_missing_input_and_exits_non_zero(
    tmp_path: Path, logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "predict",
            "--model",
            str(logistic_bundle),
            "--input",
            str(tmp_path / "nope.csv"),
            "--output",
            str(tmp_path / "out.csv"),
        ]
    )

    assert code == 1
    assert f"error: Input file {tmp_path / 'nope.csv'} does not exist." in capsys.readouterr().err


def test_mlship_predict_scores_with_the_services_runtime(
    tmp_path: Path,
    logistic_bundle: Path,
    logistic_X: np.ndarray,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As MLSHIP_RUNTIME: the bundle's model.onnx by default (a file scored in batch gets the
    endpoint's answers), scikit-learn on request."""
    from core.onnx_model import OnnxModel
    from pipelines.onnx_export import DEFAULT_ATOL, add_onnx

    bundle = Path(shutil.copytree(logistic_bundle, tmp_path / "bundle"))
    add_onnx(bundle, logistic_X)
    sklearn_model = load_model(bundle)
    src = write_input(tmp_path / "in.parquet", sklearn_model, logistic_X)

    def scored(*extra: str) -> Prediction:
        dst = tmp_path / f"out{len(extra)}.parquet"
        args = ["predict", "--model", str(bundle), "--input", str(src), "--output", str(dst)]
        assert main([*args, *extra]) == 0
        return output_prediction(sklearn_model, pq.read_table(dst))

    onnx_scored = scored()
    assert "rows/s, onnx)" in capsys.readouterr().err
    sklearn_scored = scored("--runtime", "sklearn")
    assert "rows/s, sklearn)" in capsys.readouterr().err

    onnx_answers = OnnxModel(load_model(bundle, estimator=False).bundle).predict(logistic_X)
    np.testing.assert_array_equal(onnx_scored.labels, onnx_answers.labels)
    np.testing.assert_array_equal(onnx_scored.probabilities, onnx_answers.probabilities)
    expected = sklearn_model.predict(logistic_X)
    assert_same_prediction(sklearn_scored, expected)
    assert_same_prediction(onnx_scored, expected, atol=DEFAULT_ATOL)
    assert onnx_scored.probabilities is not None and sklearn_scored.probabilities is not None
    assert not np.array_equal(onnx_scored.probabilities, sklearn_scored.probabilities)


def test_mlship_predict_runtime_onnx_without_model_onnx_names_the_fix(
    tmp_path: Path,
    logistic_bundle: Path,
    logistic_X: np.ndarray,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = load_model(logistic_bundle)
    src = write_input(tmp_path / "in.csv", model, logistic_X[:5])
    args = ["predict", "--model", str(logistic_bundle), "--input", str(src)]

    code = main([*args, "--output", str(tmp_path / "out.csv"), "--runtime", "onnx"])

    assert code == 1
    err = capsys.readouterr().err
    assert "error: --runtime=onnx, but the bundle carries no model.onnx" in err
    assert not (tmp_path / "out.csv").exists()
