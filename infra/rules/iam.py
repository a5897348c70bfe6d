"""Whether a role's identity policies grant an action: enough IAM evaluation for the rules.

Allow statements matched by action and resource (wildcards as IAM reads them), StringEquals and
StringLike conditions on the request's keys, explicit Deny first. Any other condition makes a
statement not count: the rules would rather miss a grant than invent one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from infra.rules.base import ROLE, ROLE_POLICY, Resource, dig, listify, of_type, statements


def role_documents(resources: Sequence[Resource], role_arn: Any) -> list[Any]:
    """Every identity policy of the role ``role_arn`` names (inline and role policies)."""
    name = str(role_arn).rsplit("/", 1)[-1]
    docs: list[Any] = [
        r.inputs.get("policy")
        for r in of_type(resources, ROLE_POLICY)
        if r.inputs.get("role") in (name, role_arn)
    ]
    for role in of_type(resources, ROLE):
        if role.inputs.get("name") == name:
            docs += [dig(p, "policy") for p in role.inputs.get("inlinePolicies") or []]
    return docs


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """StringEquals / StringLike conditions on the keys of ``context``; any other operator or
    key is not known here, so the statement does not count as granting."""
    for operator, clauses in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            return False
        for key, expected in clauses.items():
            if key not in context:
                return False
            values = listify(expected)
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], v) for v in values):
                return False
    return True


def iam_allows(
    documents: Sequence[Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether one Allow statement of ``documents`` grants ``action`` on ``resource`` (with the
    request's condition keys in ``context``); an explicit Deny of it wins."""
    allowed = False
    for doc in documents:
        for st in statements(doc):
            actions = [a.lower() for a in listify(st.get("Action"))]
            if not any(fnmatchcase(action.lower(), a) for a in actions):
                continue
            if not any(fnmatchcase(resource, p) for p in listify(st.get("Resource"))):
                continue
            if not _condition_holds(st.get("Condition") or {}, context or {}):
                continue
            if st.get("Effect") == "Deny":
                return False
            allowed = allowed or st.get("Effect") == "Allow"
    return allowed
