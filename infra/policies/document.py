"""The policy language itself: documents, statements, and one serialisation for all of them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Document = dict[str, Any]
Statement = dict[str, Any]

VERSION = "2012-10-17"


def document(*statements: Statement) -> Document:
    """A policy document with the current policy language version."""
    return {"Version": VERSION, "Statement": list(statements)}


def dumps(doc: Document) -> str:
    """Serialise a document the same way everywhere (stable keys: stable diffs)."""
    return json.dumps(doc, sort_keys=True)


def allow(sid: str, actions: Sequence[str], resources: Sequence[str] | str) -> Statement:
    """An Allow statement: sorted actions, one resource as a string, several as a list."""
    res = [resources] if isinstance(resources, str) else list(resources)
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": res[0] if len(res) == 1 else res,
    }
