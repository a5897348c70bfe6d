"""One AWS API request, and the helpers the converters share to write them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Inputs = Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """One API request: service (botocore's name), operation and parameters."""

    service: str
    operation: str
    params: dict[str, Any]


Converter = Callable[[Inputs, str], list[Call]]


def drop_none(value: Any) -> Any:
    """The request without absent members (the provider leaves unset arguments out)."""
    if isinstance(value, dict):
        kept = {k: drop_none(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def tag_list(inputs: Inputs, key: str = "Key", value: str = "Value") -> list[dict[str, str]] | None:
    """The resource's ``tags`` map as the list of key/value pairs most APIs take."""
    tags = inputs.get("tags")
    return [{key: k, value: v} for k, v in tags.items()] if tags else None


def call(service: str, operation: str, **params: Any) -> Call:
    """A request, with the members the program left unset removed."""
    return Call(service, operation, drop_none(params))
