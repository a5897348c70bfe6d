"""Request and response shapes for OpenAPI: REST, SageMaker and Open Inference Protocol v2.

Responses are pydantic models (documentation and the GET routes). Prediction request bodies are
parsed straight to numpy (:mod:`app.inputs`), so their JSON schemas are written here, and made
exact for the served bundle (feature count, names, nullability) by :func:`request_schemas`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.features import FeatureSchema

Label = bool | int | float | str  # bool: a table's True/False target


class ErrorResponse(BaseModel):
    error: str = Field(description="What is wrong and what to send instead.")


class PredictResponse(BaseModel):
    predictions: list[Label] = Field(description="One prediction per row, in request order.")
    probabilities: list[list[float]] | None = Field(
        default=None, description="Classifiers: per row, one probability per class."
    )
    classes: list[Label] | None = Field(
        default=None, description="Classifiers: the class of each probability column."
    )
    model_version: str
    request_id: str


class InvocationsResponse(BaseModel):
    predictions: list[Label]
    probabilities: list[list[float]] | None = None
    classes: list[Label] | None = None
    model_version: str


class ExecutionParameters(BaseModel):
    """What a Batch Transform job should send this container (GET /execution-parameters)."""

    MaxConcurrentTransforms: int = Field(
        description="Parallel requests: one per worker, at most 100 MB of mini-batches in flight."
    )
    BatchStrategy: str = Field(description="MULTI_RECORD: many lines per request.")
    MaxPayloadInMB: int = Field(description="Largest body accepted (MLSHIP_MAX_BODY_BYTES).")


class StatusResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    model_name: str
    model_version: str


# -- Open Inference Protocol v2 ---------------------------------------------------------------


class LiveResponse(BaseModel):
    live: bool


class V2ReadyResponse(BaseModel):
    ready: bool


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


# The numeric tensor types the model takes; other types get a 422 naming them.
NUMERIC_DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64",
)  # fmt: skip


class RequestInput(BaseModel):
    name: str
    shape: list[int] = Field(
        json_schema_extra={"items": {"type": "integer", "minimum": 0}, "minItems": 1}
    )
    datatype: str = Field(json_schema_extra={"enum": [*NUMERIC_DATATYPES, "BYTES"]})
    data: list[Any] = Field(description="Row-major values, flat or nested like the shape.")
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


# -- request bodies parsed without pydantic ---------------------------------------------------

PREDICT_REQUEST = "PredictRequest"
INVOCATIONS_CSV = "InvocationsCsv"
INVOCATIONS_JSONLINES = "InvocationsJsonLines"


def _value(spec: Any | None) -> dict[str, Any]:
    if spec is None:
        return {"type": ["number", "null"]}
    if spec.dtype == "bool":
        base: dict[str, Any] = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
    elif spec.dtype == "int64":
        base = {"type": "integer"}
    else:
        base = {"type": "number"}
    if spec.nullable:
        return {"anyOf": [base, {"type": "null"}]}
    return base


def request_schemas(schema: FeatureSchema | None, max_rows: int | None) -> dict[str, Any]:
    """Component schemas of the prediction request bodies, exact when a model is loaded."""
    if schema is None:
        row: dict[str, Any] = {"type": "array", "items": _value(None), "minItems": 1}
        record: dict[str, Any] = {"type": "object", "additionalProperties": _value(None)}
        columns: dict[str, Any] = {
            "type": "object",
            "additionalProperties": {"type": "array", "items": _value(None), "minItems": 1},
        }
    else:
        specs = schema.features
        # One item schema for every position (no prefixItems / "items": false: OpenAPI 3.0
        # tools and client generators reject them); the order is in the description, and
        # the service checks each value against its feature.
        kinds = {repr(_value(s)): _value(s) for s in specs}
        item = next(iter(kinds.values())) if len(kinds) == 1 else {"anyOf": list(kinds.values())}
        row = {
            "type": "array",
            "items": item,
            "minItems": schema.n,
            "maxItems": schema.n,
            "description": "Feature values in this order: " + ", ".join(schema.names),
        }
        record = {
            "type": "object",
            "properties": {s.name: _value(s) for s in specs},
            "required": list(schema.names),
            "additionalProperties": False,
        }
        columns = {
            "type": "object",
            "description": "One list of values per feature, all of the same length.",
            "properties": {
                s.name: {"type": "array", "items": _value(s), "minItems": 1} for s in specs
            },
            "required": list(schema.names),
            "additionalProperties": False,
        }
    ref_row = {"$ref": "#/components/schemas/FeatureRow"}
    ref_record = {"$ref": "#/components/schemas/FeatureRecord"}
    bound = {} if max_rows is None else {"maxItems": max_rows}
    rows = {"type": "array", "items": ref_row, "minItems": 1, **bound}
    records = {"type": "array", "items": ref_record, "minItems": 1, **bound}

    def wrapped(key: str, *options: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {key: options[0] if len(options) == 1 else {"anyOf": list(options)}},
            "required": [key],
            "additionalProperties": False,
        }

    return {
        "FeatureRow": row,
        "FeatureRecord": record,
        "FeatureColumns": columns,
        PREDICT_REQUEST: {
            "description": "One row or a batch: lists in feature order, objects keyed by feature "
            "name, or (under inputs) one list per feature. The shapes app.inputs.json_to_matrix "
            "parses, no more and no fewer (a test checks both ways).",
            "anyOf": [
                wrapped("features", ref_row, rows, ref_record),
                wrapped("instances", rows, records),
                wrapped("inputs", rows, records, {"$ref": "#/components/schemas/FeatureColumns"}),
                wrapped("records", records),
                ref_row,
                rows,
                records,
                ref_record,
            ],
        },
        INVOCATIONS_CSV: {
            "type": "string",
            "minLength": 1,
            "description": "Rows of comma-separated feature values in feature order, no header.",
        },
        INVOCATIONS_JSONLINES: {
            "type": "string",
            "minLength": 1,
            "description": "One row per line: a JSON list in feature order or a JSON object "
            "keyed by feature name.",
        },
    }


def json_body(ref: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body parsed by the route itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed body",
        401: "API key missing",
        403: "API key not valid",
        406: "Accept not satisfiable",
        413: "Body too large",
        415: "Unsupported Content-Type",
        422: "Input does not match the model's schema",
        503: "Model not loaded",
    }.items()
}
