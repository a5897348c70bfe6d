"""The HTTP ceiling: the same server stack as the service, answering without predicting.

It reads the body (as any predict route must) and returns a constant JSON answer of the same
shape as a prediction, so the figures show what uvicorn + FastAPI cost on this machine before
any model work.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

app = FastAPI(title="no-op ceiling")
_ANSWER = b'{"prediction":[1]}'


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    """Read the body and answer a constant prediction."""
    await request.body()
    return Response(content=_ANSWER, media_type="application/json")
