"""The API description (``/openapi.json``) and its pages (``/docs``, ``/redoc``), behind the
API key whenever keys are configured.

The description names every feature of the served model and its request limits, as the v2
model metadata does; a service that asks for a key on that metadata asks for one here too,
so an EKS Service or a load balancer in front of the app never shows the model to a caller
without a key. Without keys they are open, as FastAPI serves them. The pages load the
description from the browser, which sends no key: with keys, fetch ``/openapi.json`` with
one (``curl -H "X-API-Key: $KEY"``) and read it with any OpenAPI viewer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse

from app.auth import Protected

OPENAPI = "/openapi.json"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False, dependencies=[Protected])


@router.get(OPENAPI)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT,
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI, title=f"{request.app.title} - ReDoc")
