"""Handler of ``mlship plan``: the offline plan of a Pulumi stack."""

from __future__ import annotations

import argparse
import json
import sys


def plan(args: argparse.Namespace) -> int:
    """``mlship plan STACK [--json]``: print the offline plan; 1 if a policy is violated."""
    from infra.plan import render, run_stack, to_json

    result = run_stack(args.stack)
    if args.json:
        json.dump(to_json(result), sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result))
    return 1 if result.findings else 0
