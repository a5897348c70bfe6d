"""Every serving path predicts what the model predicts in-process, on the whole test split.

Single requests, concurrent requests (micro-batched), repeated requests (cached) and the ONNX
runtime, through the real app; the batch-scoring path is in ``test_batch_scoring.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.batching import BatchingPredictor
from app.cache import CachingPredictor
from app.inputs import FAST_PATH_BYTES
from app.main import create_app
from app.settings import AppSettings
from core.model import Model, Prediction, load_model
from pipelines.onnx_export import DEFAULT_ATOL, add_onnx
from tests.compare import assert_same_prediction


@pytest.fixture(autouse=True)
def _no_mlship_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MLSHIP_"):
            monkeypatch.delenv(name)


def as_prediction(model: Model, answers: list[dict[str, Any]]) -> Prediction:
    labels = np.array([a["predictions"][0] for a in answers])
    if not model.is_classifier:
        return Prediction(labels=labels.astype(np.float64), probabilities=None)
    return Prediction(
        labels=labels, probabilities=np.array([a["probabilities"][0] for a in answers])
    )


async def post_concurrently(app: FastAPI, X: np.ndarray) -> list[httpx.Response]:
    """Every row as its own request, all in flight at once, through the app's event loop."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return list(
                await asyncio.gather(
                    *(client.post("/v1/predict", json={"features": row.tolist()}) for row in X)
                )
            )


@pytest.mark.parametrize("kind", ["logistic", "forest", "regression"])
def test_single_requests_equal_in_process_predictions(
    request: pytest.FixtureRequest, kind: str
) -> None:
    bundle: Path = request.getfixturevalue(f"{kind}_bundle")
    X: np.ndarray = request.getfixturevalue(f"{kind}_X")
    model = load_model(bundle)
    settings = AppSettings(model_uri=str(bundle), cache_enabled=False)

    with TestClient(create_app(settings)) as client:
        answers = [client.post("/v1/predict", json={"features": row.tolist()}) for row in X]

    assert {r.status_code for r in answers} == {200}
    assert_same_prediction(as_prediction(model, [r.json() for r in answers]), model.predict(X))


@pytest.mark.parametrize("kind", ["logistic", "forest"])
def test_concurrent_requests_are_batched_and_equal_in_process_predictions(
    request: pytest.FixtureRequest, kind: str
) -> None:
    bundle: Path = request.getfixturevalue(f"{kind}_bundle")
    X: np.ndarray = request.getfixturevalue(f"{kind}_X")
    model = load_model(bundle)
    app = create_app(AppSettings(model_uri=str(bundle), cache_enabled=False))

    answers = asyncio.run(post_concurrently(app, X))

    assert {r.status_code for r in answers} == {200}
    assert_same_prediction(as_prediction(model, [r.json() for r in answers]), model.predict(X))
    metrics = _metrics(app)
    assert metrics["mlship_microbatch_requests_total"] == len(X)
    assert metrics["mlship_microbatch_batches_total"] < len(X)  # requests did share calls


def test_a_request_the_model_refuses_fails_alone_in_its_batch(
    logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    app = create_app(AppSettings(model_uri=str(logistic_bundle), cache_enabled=False))
    X = logistic_X[:20].copy()
    X[7] = 1e308  # schema-valid, but the scaler overflows and scikit-learn refuses the row

    answers = asyncio.run(post_concurrently(app, X))

    assert [r.status_code for r in answers] == [200] * 7 + [422] + [200] * 12
    assert _metrics(app)["mlship_microbatch_retried_batches_total"] >= 1  # it did share a batch
    assert "The model cannot score these rows" in answers[7].json()["error"]
    good = np.delete(np.arange(20), 7)
    model = load_model(logistic_bundle)
    ok = [answers[i].json() for i in good]
    assert_same_prediction(as_prediction(model, ok), model.predict(X[good]))


def test_cached_answers_equal_in_process_predictions_and_count_hits(
    forest_bundle: Path, forest_X: np.ndarray
) -> None:
    model = load_model(forest_bundle)
    settings = AppSettings(model_uri=str(forest_bundle), cache_enabled=True)

    with TestClient(create_app(settings)) as client:
        first = [client.post("/v1/predict", json={"features": r.tolist()}).json() for r in forest_X]
        again = [client.post("/v1/predict", json={"features": r.tolist()}).json() for r in forest_X]
        metrics = client.get("/metrics").text

    expected = model.predict(forest_X)
    assert_same_prediction(as_prediction(model, first), expected)
    assert_same_prediction(as_prediction(model, again), expected)
    distinct = len(np.unique(forest_X, axis=0))
    assert f"mlship_prediction_cache_hits_total {float(2 * len(forest_X) - distinct)}" in metrics
    assert f"mlship_prediction_cache_misses_total {float(distinct)}" in metrics


def test_a_batch_transform_sized_request_skips_the_cache_by_default(
    logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    """With the cache on (the default for a deterministic model, as in a transform job), a
    request over MLSHIP_CACHE_MAX_REQUEST_ROWS (64) is predicted without a lookup and stores
    nothing; one at the bound is looked up and stored."""
    model = load_model(logistic_bundle)
    X = np.tile(logistic_X, (2, 1))[:65]
    app = create_app(AppSettings(model_uri=str(logistic_bundle)))

    with TestClient(app) as client:
        assert isinstance(app.state.service.predictor, CachingPredictor)
        for rows in (X, X[:64]):
            body = "".join(",".join(repr(v) for v in row) + "\n" for row in rows.tolist())
            answer = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
            assert answer.status_code == 200, answer.text
            got = answer.json()
            assert_same_prediction(
                Prediction(np.array(got["predictions"]), np.array(got["probabilities"])),
                model.predict(rows),
            )
        metrics = _metrics(app)

    distinct = len(np.unique(X[:64], axis=0))
    assert metrics["mlship_prediction_cache_skipped_rows_total"] == 65
    assert metrics["mlship_prediction_cache_misses_total"] == 64
    assert metrics["mlship_prediction_cache_entries"] == distinct


def test_cache_is_on_by_default_for_a_deterministic_model(logistic_bundle: Path) -> None:
    app = create_app(AppSettings(model_uri=str(logistic_bundle)))
    with TestClient(app):
        predictor = app.state.service.predictor
        assert isinstance(predictor, CachingPredictor)
        assert isinstance(predictor.inner, BatchingPredictor)


@pytest.mark.parametrize("kind", ["logistic", "forest", "regression"])
def test_onnx_runtime_answers_equal_in_process_predictions(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    src: Path = request.getfixturevalue(f"{kind}_bundle")
    X: np.ndarray = request.getfixturevalue(f"{kind}_X")
    bundle = Path(shutil.copytree(src, tmp_path / kind))
    add_onnx(bundle, X)
    model = load_model(bundle)
    app = create_app(AppSettings(model_uri=str(bundle), runtime="onnx", cache_enabled=False))

    answers = asyncio.run(post_concurrently(app, X))

    assert {r.status_code for r in answers} == {200}
    assert_same_prediction(
        as_prediction(model, [r.json() for r in answers]), model.predict(X), atol=DEFAULT_ATOL
    )


def test_onnx_runtime_required_but_absent_stops_the_start(logistic_bundle: Path) -> None:
    app = create_app(AppSettings(model_uri=str(logistic_bundle), runtime="onnx"))

    with (
        pytest.raises(
            Exception, match=r"MLSHIP_RUNTIME=onnx, but the bundle carries no model\.onnx"
        ),
        TestClient(app),
    ):
        pass


def _metrics(app: FastAPI) -> dict[str, float]:
    text = app.state.metrics.exposition()[0].decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_onnx_bundle_is_served_without_loading_scikit_learn(
    tmp_path: Path, logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    """With model.onnx the server never imports scikit-learn or skops: a ~2 s faster start."""
    bundle = Path(shutil.copytree(logistic_bundle, tmp_path / "b"))
    add_onnx(bundle, logistic_X)
    expected = load_model(bundle).predict(logistic_X[:3]).labels.tolist()
    script = f"""
import json, sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import AppSettings
with TestClient(create_app(AppSettings(model_uri={str(bundle)!r}))) as client:
    answer = client.post("/v1/predict", json={{"features": {logistic_X[:3].tolist()!r}}})
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"sklearn", "skops", "scipy"}})
print(json.dumps({{"status": answer.status_code, "body": answer.json(), "loaded": loaded}}))
"""
    result = _in_fresh_process(script)
    assert result["status"] == 200
    assert result["body"]["predictions"] == expected
    assert result["loaded"] == []


# A worker's first request imports nothing: pyarrow imported pandas on its first conversion,
# and the first large body after each start waited 0.6 s for it (an ONNX-served model loads
# nothing else that imports pandas). Every Batch Transform format and answer is sent once.
_FIRST_REQUESTS = """
import json, sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import AppSettings
bundle, bodies = sys.argv[1], json.loads(sys.argv[2])
answers = ["text/csv", "application/jsonlines", "application/json", "application/x-npy"]
with TestClient(create_app(AppSettings(model_uri=bundle))) as client:
    before = set(sys.modules)
    statuses = [
        client.post("/invocations", content=open(path, "rb").read(),
                    headers={"Content-Type": media, "Accept": accept}).status_code
        for path, media in bodies for accept in answers
    ]
    imported = sorted(set(sys.modules) - before)
print(json.dumps({"statuses": statuses, "imported": imported}))
"""


def _in_fresh_process(script: str, *args: str, **env: str) -> dict[str, Any]:
    """The JSON that ``script`` prints last, run by a new interpreter (no MLSHIP_ settings
    but ``env``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLSHIP_")}
    argv = [sys.executable, "-c", script, *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=clean | env)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _first_requests(bundle: Path, bodies: list[tuple[Path, str]]) -> dict[str, Any]:
    sent = json.dumps([[str(path), media] for path, media in bodies])
    limit = str(16 * 1024 * 1024)
    return _in_fresh_process(_FIRST_REQUESTS, str(bundle), sent, MLSHIP_MAX_BODY_BYTES=limit)


def test_first_large_requests_import_nothing_on_an_onnx_bundle(
    tmp_path: Path, logistic_bundle: Path, logistic_X: np.ndarray
) -> None:
    bundle = Path(shutil.copytree(logistic_bundle, tmp_path / "b"))
    add_onnx(bundle, logistic_X)
    rows = np.tile(logistic_X, (20, 1))  # well over the size that takes pyarrow's readers
    names = load_model(bundle).feature_names
    (tmp_path / "x.csv").write_bytes(
        "".join(",".join(map(repr, r)) + "\n" for r in rows.tolist()).encode()
    )
    (tmp_path / "x.jsonl").write_bytes(
        "".join(json.dumps(r) + "\n" for r in rows.tolist()).encode()
    )
    records = [dict(zip(names, r, strict=True)) for r in rows.tolist()]
    (tmp_path / "r.jsonl").write_bytes("".join(json.dumps(r) + "\n" for r in records).encode())
    bodies = [(tmp_path / "x.csv", "text/csv"), (tmp_path / "x.jsonl", "application/jsonlines"),
              (tmp_path / "r.jsonl", "application/jsonlines")]  # fmt: skip
    assert all((tmp_path / n).stat().st_size > 4 * FAST_PATH_BYTES for n in ("x.csv", "r.jsonl"))

    result = _first_requests(bundle, bodies)

    assert result["statuses"] == [200] * 12
    assert result["imported"] == []


def test_first_large_requests_import_nothing_on_a_table_with_text(
    tmp_path: Path, penguin_bundle: Path, penguins: pd.DataFrame
) -> None:
    features = pd.concat([penguins.drop(columns=["species"])] * 20, ignore_index=True)
    features.to_csv(tmp_path / "x.csv", header=False, index=False)
    features.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    bodies = [(tmp_path / "x.csv", "text/csv"), (tmp_path / "r.jsonl", "application/jsonlines")]

    result = _first_requests(penguin_bundle, bodies)

    assert result["statuses"] == [200] * 8
    assert result["imported"] == []


def test_bundle_without_onnx_loads_scikit_learn_before_serving(logistic_bundle: Path) -> None:
    app = create_app(AppSettings(model_uri=str(logistic_bundle)))
    with TestClient(app):
        model = app.state.service.model
        assert model.bundle.model is None  # the bundle is verified without the estimator ...
        assert model._estimator is not None  # ... which is loaded before the first request
