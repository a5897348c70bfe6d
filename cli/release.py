"""Handlers of the release commands: publish a bundle, invoke an endpoint, the smoke gate."""

from __future__ import annotations

import argparse
import json
import os
import sys

from core.errors import MlshipError
from core.flags import Thresholds
from pipelines.release.targets import HttpTarget, SageMakerTarget, Target


def publish(args: argparse.Namespace) -> int:
    """``mlship publish``: print ``uri=`` and ``key=`` lines (append them to $GITHUB_OUTPUT)."""
    from pipelines.release.publish import publish_bundle

    published = publish_bundle(
        args.bundle, args.bucket, args.version, baseline_prefix=args.baseline_prefix
    )
    verb = "uploaded" if published.uploaded else "already published (same sha256)"
    print(
        f"{verb}: {published.uri}\n"
        f"deploy it with: pulumi config set mlship:modelDataKey {published.key}",
        file=sys.stderr,
    )
    for key in published.baseline:
        print(f"baseline for the batch check: s3://{published.bucket}/{key}", file=sys.stderr)
    print(f"uri={published.uri}\nkey={published.key}\nsha256={published.sha256}")
    return 0


def make_target(args: argparse.Namespace, max_attempts: int = 1, pool_size: int = 10) -> Target:
    """The target named on the command line; the API key is read from ``--api-key-env``."""
    if not 0 < args.timeout <= 300:
        raise MlshipError("--timeout must be in (0, 300] seconds.")
    if args.endpoint:
        return SageMakerTarget(
            args.endpoint, args.timeout, max_attempts=max_attempts, pool_size=pool_size
        )
    api_key = os.environ.get(args.api_key_env) or None
    return HttpTarget(args.url, args.timeout, api_key)


def invoke(args: argparse.Namespace) -> int:
    """``mlship invoke``: send one request and print the answer.

    The body is ``--body`` (JSON) or, with ``--bundle``, the bundle's first golden row.
    """
    from pipelines.release.smoke import request_body

    target = make_target(args, max_attempts=3)
    if args.body is not None:
        try:
            json.loads(args.body)
        except ValueError as e:
            raise MlshipError(
                f"--body is not valid JSON ({e}); write it as '{{\"instances\": [[1.0, 2.0]]}}'."
            ) from e
        body = args.body.encode()
    elif args.bundle:
        from core.bundle import load_bundle
        from core.sources import local_bundle

        with local_bundle(args.bundle, what="--bundle") as path:  # an archive: extracted, removed
            body = request_body(load_bundle(path).golden.inputs[:1])
    else:
        raise MlshipError("Pass --body '{\"instances\": [[...]]}' or --bundle DIR.")
    target.check()
    answer = target.invoke(body)
    try:
        print(json.dumps(json.loads(answer), indent=2))
    except ValueError:
        print(answer.decode("utf-8", "replace"))
    return 0


def smoke(args: argparse.Namespace) -> int:
    """``mlship smoke``: the post-deploy gate (exit 0 when it passes)."""
    from core.bundle import load_bundle
    from core.sources import local_bundle
    from pipelines.release.smoke import SmokeOptions, run_smoke

    options = SmokeOptions(
        requests=args.requests,
        concurrency=args.concurrency,
        max_p99_ms=args.max_p99_ms,
        max_error_rate=args.max_error_rate,
    )
    options.check()
    thresholds = _thresholds(args) if args.evidence else None
    make_target(args)  # refuses a bad --timeout before the bundle is read
    with local_bundle(args.bundle, what="--bundle") as path:  # an archive: extracted, removed
        bundle = load_bundle(path)
        run_smoke(bundle, lambda attempts, pool: make_target(args, attempts, pool), options)
    if thresholds is not None:
        from pipelines.release.evidence import fetch_metrics, run_evidence_gate

        metrics_url = args.metrics_url or args.url
        run_evidence_gate(lambda: fetch_metrics(metrics_url, args.timeout), thresholds)
    return 0


def _thresholds(args: argparse.Namespace) -> Thresholds:
    """The evidence thresholds: the flags document's, then the command line's."""
    from core.flags import parse_flags, read_flags_source

    if not args.url:
        raise MlshipError(
            "--evidence reads the service's /metrics: give --url (SageMaker endpoints expose "
            "none; their rollouts are guarded by the rollback alarms)."
        )
    base = Thresholds()
    if args.flags:
        base = parse_flags(read_flags_source(args.flags), args.flags).thresholds
    overrides = {
        "min_agreement": args.min_agreement,
        "max_abs_difference": args.max_abs_difference,
        "max_latency_delta_ms": args.max_latency_delta_ms,
        "max_error_rate": args.max_challenger_error_rate,
        "min_compared_rows": args.min_compared_rows,
    }
    merged = base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    try:
        return Thresholds.model_validate(merged)
    except ValueError as e:
        raise MlshipError(f"Evidence thresholds: {e}") from e
