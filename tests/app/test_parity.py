"""Predictions through every route equal the bundle model's in-process predictions on the whole
held-out split, for a linear classifier, a forest and a regressor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.model import load_model
from tests.app.conftest import ClientFactory, test_split


@pytest.mark.parametrize("kind", ["logistic", "forest", "regression"])
def test_parity_whole_test_split_every_route(
    make_client: ClientFactory, kind: str, request: pytest.FixtureRequest
) -> None:
    bundle: Path = request.getfixturevalue(f"{kind}_bundle")
    X = test_split(bundle)
    expected = load_model(bundle).predict(X)
    client = make_client(bundle)
    csv = "\n".join(",".join(repr(v) for v in row) for row in X.tolist())

    rest = client.post("/v1/predict", json={"instances": X.tolist()}).json()
    single = [
        client.post("/v1/predict", json={"features": row}).json()["predictions"][0]
        for row in X[:25].tolist()
    ]
    sagemaker = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    v2 = client.post(
        "/v2/models/mlship/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": list(X.shape),
                    "datatype": "FP64",
                    "data": X.ravel().tolist(),
                }
            ]
        },
    ).json()

    if kind == "regression":
        np.testing.assert_allclose(rest["predictions"], expected.labels, rtol=1e-12)
        np.testing.assert_allclose(single, expected.labels[:25], rtol=1e-12)
        np.testing.assert_allclose(sagemaker.json()["predictions"], expected.labels, rtol=1e-12)
        np.testing.assert_allclose(v2["outputs"][0]["data"], expected.labels, rtol=1e-12)
        return
    assert expected.probabilities is not None
    assert rest["predictions"] == expected.labels.tolist()
    assert single == expected.labels[:25].tolist()
    assert sagemaker.json()["predictions"] == expected.labels.tolist()
    assert v2["outputs"][0]["data"] == expected.labels.tolist()
    np.testing.assert_allclose(rest["probabilities"], expected.probabilities, rtol=1e-12)
    np.testing.assert_allclose(
        np.reshape(v2["outputs"][1]["data"], expected.probabilities.shape),
        expected.probabilities,
        rtol=1e-12,
    )
