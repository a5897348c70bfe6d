"""The SageMaker SDK's own serializers and deserializers against the real process.

A user's ``Predictor`` (or ``SKLearnPredictor``, whose defaults are NumPy arrays both ways)
sends what its serializer writes, with the serializer's ``Content-Type`` and the
deserializer's ``Accept``, and reads the answer with the deserializer. The SDK runs in its
own dependency group (``tests/contract/sagemaker_sdk_client.py``); every pair must answer
200 with the in-process prediction, for a numeric model and for a table with text and gaps
(the penguins), sent as a pandas DataFrame and as records.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.inputs import FAST_PATH_BYTES
from core.features import FeatureSchema
from core.model import Prediction, load_model
from tests.contract.conftest import Server, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _sdk(url: str, mode: str, data: Path, names: list[str]) -> dict[str, Any]:
    """The client script's answers, run with the SDK's dependency group."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: run `make setup`")
    command = [uv, "run", "--frozen", "--isolated", "--only-group", "sagemaker-sdk", "python",
               str(ROOT / "tests" / "contract" / "sagemaker_sdk_client.py"),
               url, mode, str(data), json.dumps(names)]  # fmt: skip
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answers: dict[str, Any] = json.loads(done.stdout)
    return answers


def _read(answer: dict[str, Any], case: str) -> tuple[str, list[Any], Any]:
    """The media type, labels and probabilities (None for an .npy answer) of one answer."""
    assert answer["status"] == 200, answer
    media, decoded = answer["content_type"].split(";")[0], answer["decoded"]
    if case.endswith("numpy") or case.endswith("numpy-out"):
        return media, decoded, None
    if media == "text/csv":
        return media, [row[0] for row in decoded], [[float(v) for v in r[1:]] for r in decoded]
    if media == "application/jsonlines":
        return (
            media,
            [line["predictions"][0] for line in decoded],
            [line["probabilities"][0] for line in decoded],
        )
    return media, decoded["predictions"], decoded["probabilities"]


def _check(answer: dict[str, Any], case: str, media: str, expected: Prediction) -> None:
    got_media, labels, probabilities = _read(answer, case)
    assert got_media == media
    want = expected.labels.tolist()
    if media == "text/csv":  # the CSV deserializer reads every cell as text
        want = [str(v) for v in want]
    assert labels == want
    if probabilities is not None:
        assert expected.probabilities is not None
        np.testing.assert_allclose(probabilities, expected.probabilities, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def numeric(
    server: Server, logistic_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # 600 rows of 30 features: every body is past the size where pyarrow's readers take over
    rows = np.resize(np.load(logistic_bundle.parent / "logistic-test_X.npy"), (600, 30))
    path = tmp_path_factory.mktemp("sdk") / "rows.npy"
    np.save(path, rows)
    names = load_model(logistic_bundle, estimator=False).feature_names
    return _sdk(server.url, "rows", path, names) | {"rows": rows}


@pytest.mark.parametrize(
    ("case", "media"),
    [
        ("numpy", "application/x-npy"),
        ("csv", "text/csv"),
        ("json", "application/json"),
        ("json-instances", "application/json"),
        ("jsonlines-records", "application/jsonlines"),
        ("jsonlines-lists", "application/jsonlines"),
        ("csv-in-numpy-out", "application/x-npy"),
    ],
)
def test_sagemaker_sdk_predictor_gets_the_prediction(
    numeric: dict[str, Any], logistic_bundle: Path, case: str, media: str
) -> None:
    expected = load_model(logistic_bundle).predict(numeric["rows"])

    assert numeric[case]["sent_bytes"] > FAST_PATH_BYTES
    _check(numeric[case], case, media, expected)


@pytest.fixture(scope="module")
def penguin_server(
    penguin_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serving(penguin_bundle, tmp_path_factory.mktemp("logs") / "penguins.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def table(
    penguin_server: Server,
    penguin_bundle: Path,
    penguins: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    names = load_model(penguin_bundle, estimator=False).feature_names
    frame = penguins[names].iloc[::5]  # 69 rows, gaps in sex and the measurements
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]
    path = tmp_path_factory.mktemp("sdk") / "records.json"
    path.write_text(json.dumps(records))
    return _sdk(penguin_server.url, "table", path, names) | {"records": records}


@pytest.mark.parametrize(
    ("case", "media"),
    [
        ("table-csv", "text/csv"),
        ("table-csv-numpy", "application/x-npy"),
        ("table-jsonlines", "application/jsonlines"),
    ],
)
def test_sagemaker_sdk_predictor_on_a_table_with_text_and_gaps(
    table: dict[str, Any], penguin_bundle: Path, case: str, media: str
) -> None:
    model = load_model(penguin_bundle)
    schema = FeatureSchema(model.manifest)
    rows = [[r[n] for n in model.feature_names] for r in table["records"]]
    expected = model.predict(schema.rows_to_matrix(rows))

    _check(table[case], case, media, expected)


def test_sagemaker_sdk_nan_from_a_dataframe_is_named(table: dict[str, Any]) -> None:
    """A DataFrame's own records hold float NaN for its gaps, which json.dumps writes as NaN:
    not JSON. The 400 says to send null."""
    answer = table["table-jsonlines-nan"]

    assert answer["status"] == 400
    error = json.loads(answer["error"])["error"]
    assert "JSON has no NaN or Infinity: send null for a missing value" in error
