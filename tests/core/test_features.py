"""One feature-value rule for serving and batch scoring: what one refuses, the other refuses
with the same message (the rule lives in core.features)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import AppSettings
from core.errors import InvalidInput
from core.model import Model, load_model
from pipelines.batch import score_file


@pytest.fixture(scope="module")
def model(logistic_bundle: Path) -> Model:
    """The logistic bundle with its second feature declared integer and third boolean."""
    loaded = load_model(logistic_bundle)
    features = list(loaded.manifest.features)
    features[1] = features[1].model_copy(update={"dtype": "int64"})
    features[2] = features[2].model_copy(update={"dtype": "bool"})
    manifest = loaded.manifest.model_copy(update={"features": features})
    return Model(replace(loaded.bundle, manifest=manifest))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (1, 2.5, "feature 'mean_texture' (row 3) must be an integer."),
        (2, 0.5, "feature 'mean_perimeter' (row 3) must be 0, 1, true or false."),
        (0, float("inf"), "feature 'mean_radius' (row 3) is infinite; send finite numbers."),
        (
            0,
            None,
            "feature 'mean_radius' (row 3) is missing (null or NaN), but the model was trained "
            "without missing values for it; send a number.",
        ),
    ],
)
def test_features_batch_refuses_what_serving_refuses_with_the_same_message(
    tmp_path: Path, model: Model, column: int, value: float | None, message: str
) -> None:
    rows = np.ones((5, model.n_features))
    rows[:, 2] = 1.0
    cells: list[list[float | None]] = [list(r) for r in rows.tolist()]
    cells[3][column] = value
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({n: [r[j] for r in cells] for j, n in enumerate(model.feature_names)}), src
    )

    with pytest.raises(InvalidInput) as batch:
        score_file(model, str(src), str(tmp_path / "out.parquet"))
    settings = AppSettings(model_uri="unused: the model is passed in")
    with TestClient(create_app(settings, model), raise_server_exceptions=False) as client:
        if value is not None and not np.isfinite(value):  # JSON has no infinity: send CSV
            body = "\n".join(",".join(str(v) for v in r) for r in cells)
            answer = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        else:
            answer = client.post("/v1/predict", json={"instances": cells})

    assert str(batch.value) == message
    assert answer.status_code == 422
    assert answer.json() == {"error": message}
    assert not (tmp_path / "out.parquet").exists()
