"""The mlship rules as a Pulumi policy pack, enforced by the Pulumi CLI.

``pulumi preview --policy-pack infra/policypack`` (or ``pulumi up``) runs every rule of
``infra/rules.py`` as a mandatory stack policy over the stack's resources, the same functions
``mlship plan`` runs offline. Needs the Pulumi CLI; the pack's requirements are installed by it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The pack runs from this directory; the rules live in the repository's `infra` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.rules import RULES, Rule, from_policy_resources, rule_id


def _policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for finding in rule(from_policy_resources(args.resources)):
            report_violation(f"{finding.resource}: {finding.message}", finding.urn or None)

    return StackValidationPolicy(
        name=rule_id(rule),
        description=(rule.__doc__ or rule_id(rule)).strip(),
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _pack() -> Any:
    return PolicyPack(name="mlship", policies=[_policy(rule) for rule in RULES])


if __name__ == "__main__":
    _pack()
