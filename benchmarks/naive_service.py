"""The naive baseline: the seed's tutorial service, kept as it was written.

FastAPI under uvicorn with one worker, a ``joblib``-loaded scikit-learn model, and
``model.predict([features])`` once per request. ``make bench`` serves the same fitted model
through it so the figures of this service have a baseline from the same run.

Run: ``NAIVE_MODEL_PATH=model.joblib uvicorn benchmarks.naive_service:app --workers 1``.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="naive tutorial service")
model: Any = joblib.load(os.environ["NAIVE_MODEL_PATH"])


class PredictRequest(BaseModel):
    features: list[float]


class PredictResponse(BaseModel):
    prediction: list[Any]


@app.post("/v1/predict", response_model=PredictResponse)
def predict(request: PredictRequest) -> dict[str, Any]:
    """Predict one row."""
    prediction = model.predict([request.features])
    return {"prediction": prediction.tolist()}
