"""The SageMaker SDK's own serializers and deserializers against the real process.

A user's ``Predictor`` (or ``SKLearnPredictor``, whose defaults are NumPy arrays both ways)
sends what its serializer writes, with the serializer's ``Content-Type`` and the
deserializer's ``Accept``, and reads the answer with the deserializer. The SDK runs in its
own dependency group (``tests/contract/sagemaker_sdk_client.py``); every pair must answer
200 with the in-process prediction.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.model import load_model
from tests.contract.conftest import Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def answers(
    server: Server, logistic_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: run `make setup`")
    rows = np.load(logistic_bundle.parent / "logistic-test_X.npy")[:25]
    path = tmp_path_factory.mktemp("sdk") / "rows.npy"
    np.save(path, rows)
    names = load_model(logistic_bundle, estimator=False).feature_names
    command = [uv, "run", "--frozen", "--isolated", "--only-group", "sagemaker-sdk", "python",
               str(ROOT / "tests" / "contract" / "sagemaker_sdk_client.py"),
               server.url, str(path), json.dumps(names)]  # fmt: skip
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    result["rows"] = rows
    return result


@pytest.mark.parametrize(
    "case",
    ["numpy", "csv", "json", "json-instances", "jsonlines-records", "jsonlines-lists",
     "csv-in-numpy-out"],
)  # fmt: skip
def test_sagemaker_sdk_predictor_gets_the_prediction(
    answers: dict[str, Any], logistic_bundle: Path, case: str
) -> None:
    expected = load_model(logistic_bundle).predict(answers["rows"])
    answer = answers[case]

    assert answer["status"] == 200, answer
    decoded = answer["decoded"]
    media = answer["content_type"].split(";")[0]
    if case in ("numpy", "csv-in-numpy-out"):
        assert media == "application/x-npy"
        labels, probabilities = decoded, None
    elif case == "csv":
        assert media == "text/csv"
        labels = [int(row[0]) for row in decoded]
        probabilities = [[float(v) for v in row[1:]] for row in decoded]
    elif case.startswith("jsonlines"):
        assert media == "application/jsonlines"
        labels = [line["predictions"][0] for line in decoded]
        probabilities = [line["probabilities"][0] for line in decoded]
    else:
        assert media == "application/json"
        labels, probabilities = decoded["predictions"], decoded["probabilities"]
    assert labels == expected.labels.tolist()
    if probabilities is not None:
        assert expected.probabilities is not None
        np.testing.assert_allclose(probabilities, expected.probabilities, rtol=0, atol=1e-15)
