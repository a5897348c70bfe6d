r"""Validate an AWS API request against botocore's service model, constraint by constraint.

botocore's ``ParamValidator`` checks what a client checks before sending: required members,
unknown members, types and minimum lengths. The service checks more: the shapes' ``max``,
``pattern`` and ``enum`` constraints (and ``min``/``max`` of numbers). :func:`validate` runs
``ParamValidator`` and then walks the shape for those, so a request that the service would
refuse with a ValidationException is refused here, offline.

Patterns must match the whole value, as the services apply them: the models write most of them
unanchored (IAM's RoleName is ``[\w+=,.@-]+``), yet IAM refuses a role name with a space. A few
are written in Java regex syntax; :data:`JAVA_PATTERNS` translates them, each to an equal or
more permissive Python pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StringShape, StructureShape
from botocore.validate import ParamValidator

# Java regex constructs in the models of the operations mlship calls, and their Python forms.
JAVA_PATTERNS = {
    # Tag keys and values (SageMaker, ...): \p{L} letters, \p{N} numbers, \p{Z} separators.
    # \w covers letters and numbers; \s is a superset of the separators.
    r"\p{L}\p{Z}\p{N}": r"\w\s",
    # POSIX printable ASCII.
    r"\p{Print}": r"[\x20-\x7E]",
    # IAM policy documents: any character, where Java spells the astral planes as surrogate
    # pairs (an inverted range in Python); allow them as code points instead.
    r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010FFFF",
}


@dataclass(frozen=True)
class Problem:
    """One constraint a request breaks: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def operation(service: str, name: str) -> OperationModel:
    """botocore's model of one operation, e.g. ``("sagemaker", "CreateEndpoint")``."""
    return _session().get_service_model(service).operation_model(name)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    for java, python in JAVA_PATTERNS.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


def validate(service: str, name: str, params: Mapping[str, Any]) -> list[Problem]:
    """Every constraint of ``service``'s ``name`` operation that ``params`` breaks."""
    shape = operation(service, name).input_shape
    if shape is None:
        return [Problem("", f"{service} {name} takes no input")] if params else []
    report = ParamValidator().validate(dict(params), shape)
    problems = [Problem("", line.strip()) for line in report.generate_report().splitlines()]
    problems += _walk(shape, params, "")
    return problems


def _walk(shape: Shape, value: Any, path: str) -> list[Problem]:
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        found: list[Problem] = []
        for key, item in value.items():
            member = shape.members.get(key)
            if member is not None:  # unknown members are ParamValidator's report
                found += _walk(member, item, f"{path}.{key}" if path else key)
        return found
    if isinstance(shape, ListShape) and isinstance(value, list):
        found = _bounds(meta, len(value), path, "items")
        for i, item in enumerate(value):
            found += _walk(shape.member, item, f"{path}[{i}]")
        return found
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        found = _bounds(meta, len(value), path, "entries")
        for key, item in value.items():
            found += _walk(shape.key, key, f"{path}.<key {key!r}>")
            found += _walk(shape.value, item, f"{path}.{key}")
        return found
    if isinstance(shape, StringShape) and isinstance(value, str):
        found = _bounds(meta, len(value), path, "characters")
        enum = shape.enum
        if enum and value not in enum:
            found.append(Problem(path, f"{value!r} is not one of {', '.join(enum)}"))
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            found.append(Problem(path, f"{value!r} does not match pattern {pattern}"))
        return found
    if (
        shape.type_name in ("integer", "long", "float", "double")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return _bounds(meta, value, path, "")
    return []


def _bounds(meta: Mapping[str, Any], size: float, path: str, unit: str) -> list[Problem]:
    low, high = meta.get("min"), meta.get("max")
    what = f"{size:g} {unit}".strip()
    if low is not None and size < low:
        return [Problem(path, f"{what} is below the minimum {low}")]
    if high is not None and size > high:
        return [Problem(path, f"{what} is above the maximum {high}")]
    return []
