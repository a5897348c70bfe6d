"""Check request parameters against botocore's service model, beyond what moto checks.

botocore's ParamValidator checks required members, types and minimums; this adds the maximum
lengths and values, enums and patterns AWS applies on its side.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator


def request_problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Every way ``params`` breaks ``service.operation``'s input constraints (empty if none)."""
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    assert shape is not None, f"{service}.{operation} takes no input"
    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    _walk(shape, params, operation, problems)
    return problems


def _walk(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk(member, value[name], f"{path}.{name}", problems)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items, at most {meta['max']}")
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{i}]", problems)
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for k, v in value.items():
            _walk(shape.key, k, f"{path}.<key {k}>", problems)
            _walk(shape.value, v, f"{path}.{k}", problems)
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {meta['max']}")
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            problems.append(f"{path}: {value!r} not one of {enum}")
        pattern = meta.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:
                return
            # AWS services match the whole value (Java `matches()`), not a substring.
            if not compiled.fullmatch(value):
                problems.append(f"{path}: {value!r} does not match {pattern}")
    elif (
        shape.type_name in ("integer", "long")
        and isinstance(value, int)
        and "max" in meta
        and value > meta["max"]
    ):
        problems.append(f"{path}: {value} above the maximum {meta['max']}")
