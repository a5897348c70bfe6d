"""HTTP routes: one module per API (health, SageMaker, REST, Open Inference Protocol v2)."""

from __future__ import annotations

from fastapi import Request

from app.errors import NotReady
from app.service import Service


def get_service(request: Request) -> Service:
    """The loaded service, or 503 while the model is not loaded."""
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        raise NotReady("The model is not loaded yet; retry shortly.")
    return service
