"""The ``mlship:`` stack settings as ``Pulumi.yaml`` declares them, and typed access to values.

``Pulumi.yaml``'s typed ``config:`` block is the one declaration of every key (type, default,
description): the Pulumi CLI checks stack files against it, :func:`declared_keys` reads it for
the program, and the README's reference table is :func:`reference_table` (a test keeps it so).
:class:`Reader` is how the section parsers read raw values: only declared keys, with their
declared defaults, each conversion refusing a bad value with the key, the problem and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from core.errors import ConfigError

NAMESPACE = "mlship"
KeyType = Literal["string", "integer", "boolean", "array"]
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Key:
    """One ``mlship:`` stack setting as declared in ``Pulumi.yaml`` (default None: required)."""

    name: str
    type: KeyType
    default: Any
    description: str


@cache
def declared_keys(root: Path = ROOT) -> tuple[Key, ...]:
    """Every ``mlship:`` key of ``Pulumi.yaml``'s ``config:`` block, in declaration order.

    Raises:
        ConfigError: the block declares a key without a supported type or a description.
    """
    config = yaml.safe_load((root / "Pulumi.yaml").read_text())["config"]
    keys = []
    for full_name, entry in config.items():
        namespace, name = full_name.split(":", 1)
        if namespace != NAMESPACE:
            continue
        if entry.get("type") not in ("string", "integer", "boolean", "array") or not entry.get(
            "description"
        ):
            raise ConfigError(
                f"Pulumi.yaml declares {full_name} without a type (string, integer, boolean, "
                "array) or a description: add both."
            )
        keys.append(Key(name, entry["type"], entry.get("default"), entry["description"]))
    return tuple(keys)


def keys_by_name(root: Path = ROOT) -> dict[str, Key]:
    """:func:`declared_keys` by name."""
    return {k.name: k for k in declared_keys(root)}


def _default_cell(key: Key) -> str:
    if key.default is None:
        return "*(required)*"
    if key.default == "":
        return '`""`'
    return f"`{json.dumps(key.default) if not isinstance(key.default, str) else key.default}`"


def reference_table(root: Path = ROOT) -> str:
    """The README's stack configuration reference, written from the declaration."""
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for key in declared_keys(root):
        rows.append(
            f"| `{NAMESPACE}:{key.name}` | {key.type} | {_default_cell(key)} | {key.description} |"
        )
    return "\n".join(rows) + "\n"


class Reader:
    """Typed access to raw config strings, with the defaults ``Pulumi.yaml`` declares.

    Every section parser reads its keys through one of these methods with the key name as a
    literal first argument (a test reads those calls to check they match the declaration).
    """

    def __init__(self, raw: Mapping[str, str], keys: Mapping[str, Key] | None = None) -> None:
        self._keys = dict(keys) if keys is not None else keys_by_name()
        unknown = sorted(set(raw) - set(self._keys))
        if unknown:
            raise ConfigError(
                f"mlship:{unknown[0]} is not a setting mlship knows: remove it or fix the spelling "
                f"(settings: {', '.join(sorted(self._keys))})."
            )
        self._raw = raw

    def _value(self, name: str) -> Any:
        # A KeyError here is a programming error: the key is read but not declared.
        key = self._keys[name]
        value = self._raw.get(name)
        return key.default if value is None else value

    def optional_str(self, name: str) -> str | None:
        value = self._value(name)
        return None if value is None else str(value)

    def string(self, name: str) -> str:
        value = self._value(name)
        return "" if value is None else str(value)

    def required_str(self, name: str, fix: str) -> str:
        value = self.optional_str(name)
        if value is None or not value.strip():
            raise ConfigError(f"mlship:{name} is not set: {fix}.")
        return value.strip()

    def choice(self, name: str, allowed: Sequence[str]) -> Any:
        value = self.string(name)
        if value not in allowed:
            raise ConfigError(f"mlship:{name} is {value!r}: use one of {', '.join(allowed)}.")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._value(name)
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or str(number) != str(value).strip():
            raise ConfigError(f"mlship:{name} is {value!r}: give a whole number {low}-{high}.")
        if not low <= number <= high:
            raise ConfigError(f"mlship:{name} is {number}: it must be between {low} and {high}.")
        return number

    def boolean(self, name: str) -> bool:
        value = self._value(name)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ConfigError(f"mlship:{name} is {value!r}: give true or false.")

    def integers(self, name: str, low: int, high: int) -> tuple[int, ...]:
        items = _as_list(self._value(name), name)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
                raise ConfigError(
                    f"mlship:{name} entry {item!r} is not a whole number {low}-{high}."
                )
        return tuple(items)

    def strings(self, name: str, pattern: re.Pattern[str], example: str) -> tuple[str, ...]:
        value = self._value(name)
        items = _as_list(value, name)
        for item in items:
            if not isinstance(item, str) or not pattern.match(item):
                raise ConfigError(f"mlship:{name} entry {item!r} is not {example}.")
        return tuple(items)


def _as_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, list):
        raise ConfigError(
            f"mlship:{name} is {value!r}: give a YAML list in the stack file, or "
            f"`pulumi config set --path 'mlship:{name}[0]' VALUE`."
        )
    return parsed


CIDR_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")


def cidr(value: str, key: str) -> str:
    """``value`` if it is an IPv4 CIDR block, else a ConfigError naming ``mlship:<key>``."""
    m = CIDR_RE.match(value)
    if not m or any(int(p) > 255 for p in m.groups()[:4]) or int(m.group(5)) > 32:
        raise ConfigError(f"mlship:{key} value {value!r} is not a CIDR such as 10.0.0.0/16.")
    return value
