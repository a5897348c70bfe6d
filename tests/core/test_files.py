"""One list of data-file formats: what training reads, batch scoring reads and writes too."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from core.errors import DataError
from core.files import data_format, require_data_format
from core.model import Model
from pipelines.batch import score_file
from pipelines.data import read_table


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("s3://b/k/A.CSV.GZ", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.json", None),
        ("a.gz", None),
        ("csv", None),
    ],
)
def test_files_data_format_by_name(name: str, fmt: str | None) -> None:
    assert data_format(name) == fmt


def test_files_refusal_names_the_file_the_formats_and_the_fix() -> None:
    with pytest.raises(DataError) as e:
        require_data_format("data/x.tsv", "Export it as CSV.")

    assert str(e.value) == (
        "Cannot read data/x.tsv: mlship reads CSV (.csv, .csv.gz) and Parquet (.parquet, .pq) "
        "files, not .tsv. Export it as CSV."
    )


def test_files_gzip_csv_trains_and_scores_like_csv(
    tmp_path: Path, logistic_model: Model, logistic_X: np.ndarray
) -> None:
    names = logistic_model.feature_names
    table = pa.table({n: logistic_X[:, j] for j, n in enumerate(names)})
    src = tmp_path / "in.csv.gz"
    with pa.CompressedOutputStream(str(src), "gzip") as sink:
        pacsv.write_csv(table, sink)

    frame = read_table(src).frame
    result = score_file(logistic_model, str(src), str(tmp_path / "out.csv.gz"))
    with gzip.open(tmp_path / "out.csv.gz") as f:  # really gzip, not text named .gz
        out = pacsv.read_csv(f)

    assert list(frame.columns) == names and len(frame) == len(logistic_X)
    assert result.rows == out.num_rows == len(logistic_X)
    assert (
        out.column("prediction").to_pylist() == logistic_model.predict(logistic_X).labels.tolist()
    )
