"""CloudWatch Logs JSON filter patterns and EventBridge event patterns, implemented from their
documented syntax so the tests can apply the stack's patterns to sample events.

- CloudWatch Logs, "Filter pattern syntax for metric filters, subscription filters, filter log
  events, and Live Tail" -> "Using filter patterns to match terms in JSON log events": a pattern
  is ``{ <selector> <operator> <value> }`` joined with ``&&`` / ``||`` and parentheses; selectors
  start with ``$.`` and walk objects (and ``[n]`` array elements); strings compare with ``=`` /
  ``!=`` (double-quoted, ``*`` a wildcard), numbers with ``= != < > <= >=``; a selector whose
  field is absent, or of the other type, does not match. A metric value ``$.field`` publishes that
  field's number; a dimension ``$.field`` its value.
- EventBridge, "Event patterns": every field of the pattern must match; a list matches when the
  event's value equals any of its members; nested objects match recursively.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<sel>\$(?:\.[A-Za-z_][\w-]*|\[\d+\])+)|(?P<op>&&|\|\||<=|>=|!=|=|<|>)"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(?P<paren>[()]))"
)
_MISSING = object()


class PatternError(ValueError):
    """The pattern is not one this implementation (and CloudWatch's syntax) accepts."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PatternError(f"cannot read {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def select(event: Any, selector: str) -> Any:
    """The value ``$.a.b[0]`` names in ``event``, or a marker when there is none."""
    value = event
    for part in re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", selector):
        key, index = part
        if key:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
    return value


def _compare(value: Any, op: str, kind: str, literal: str) -> bool:
    if value is _MISSING:
        return False
    if kind == "str":
        if not isinstance(value, str) or op not in ("=", "!="):
            return False
        text = json.loads(literal)
        regex = "^" + ".*".join(re.escape(p) for p in text.split("*")) + "$"
        hit = re.match(regex, value) is not None
        return hit if op == "=" else not hit
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    number = float(literal)
    return {
        "=": value == number,
        "!=": value != number,
        "<": value < number,
        ">": value > number,
        "<=": value <= number,
        ">=": value >= number,
    }[op]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], event: Any) -> None:
        self.t, self.i, self.event = tokens, 0, event

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise PatternError("unexpected end of pattern")
        self.i += 1
        return tok

    def expr(self) -> bool:
        left = self.conj()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.conj()
            left = left or right
        return left

    def conj(self) -> bool:
        left = self.atom()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.atom()
            left = left and right
        return left

    def atom(self) -> bool:
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            value = self.expr()
            if self.take() != ("paren", ")"):
                raise PatternError("unbalanced parentheses")
            return value
        if kind != "sel":
            raise PatternError(f"expected a selector, got {text!r}")
        op_kind, op = self.take()
        lit_kind, literal = self.take()
        if op_kind != "op" or op in ("&&", "||") or lit_kind not in ("str", "num"):
            raise PatternError(f"expected an operator and a value after {text}")
        return _compare(select(self.event, text), op, lit_kind, literal)


def json_pattern_matches(pattern: str, message: str) -> bool:
    """Whether CloudWatch Logs' JSON filter ``pattern`` matches the log event ``message``."""
    body = pattern.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise PatternError("a JSON filter pattern is enclosed in { }")
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        return False  # JSON patterns match JSON log events only
    parser = _Parser(_tokens(body[1:-1]), event)
    result = parser.expr()
    if parser.peek() is not None:
        raise PatternError(f"unexpected {parser.peek()}")
    return result


def metric_datum(
    pattern: str, value: str, dimensions: dict[str, str], message: str
) -> tuple[float, dict[str, str]] | None:
    """The (value, dimensions) a metric filter publishes for ``message``, or None."""
    if not json_pattern_matches(pattern, message):
        return None
    event = json.loads(message)
    number = select(event, value) if value.startswith("$") else float(value)
    if number is _MISSING or isinstance(number, bool) or not isinstance(number, int | float):
        return None
    dims = {}
    for name, selector in dimensions.items():
        found = select(event, selector)
        if found is _MISSING:
            return None
        dims[name] = str(found)
    return float(number), dims


def event_pattern_matches(pattern: Any, event: Any) -> bool:
    """Whether the EventBridge ``pattern`` matches ``event`` (exact values, lists, nesting)."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict):
            return False
        return all(k in event and event_pattern_matches(v, event[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        if isinstance(event, list):
            return any(e in pattern for e in event)
        return event in pattern
    raise PatternError(f"pattern leaves are lists, not {pattern!r}")
