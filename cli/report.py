"""Handler of ``mlship report``: an HTML monitoring report from captured predictions."""

from __future__ import annotations

import argparse
import sys


def report(args: argparse.Namespace) -> int:
    """``mlship report``: read ``--capture`` for the bundle ``--model``, write ``--out``."""
    from pipelines.monitoring.report import write_report

    result = write_report(args.capture, args.model, args.out, labels=args.labels)
    data = result.data
    drifting = [f["name"] for f in data["drift"]["features"] if f["status"] == "significant"]
    capture = data["capture"]
    print(
        f"{capture['rows']:,} rows in {capture['records']:,} requests "
        f"({sum(capture['skipped'].values()):,} records skipped); "
        f"significant drift on {len(drifting)} features"
        + (f" ({', '.join(drifting[:5])}{', …' if len(drifting) > 5 else ''})" if drifting else ""),
        file=sys.stderr,
    )
    labels = data["labels"]
    if labels is not None and labels["metrics"]:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in labels["metrics"].items() if v is not None)
        print(f"live quality on {labels['matched_rows']:,} labelled rows: {shown}", file=sys.stderr)
    print(f"report written to {result.html} (figures: {result.json})")
    return 0
