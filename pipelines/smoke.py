"""Post-deploy gate (``mlship smoke``) and one-off requests (``mlship invoke``).

A target is either a SageMaker endpoint (``sagemaker-runtime`` InvokeEndpoint, with the standard
AWS configuration, ``AWS_ENDPOINT_URL`` included) or the base URL of an mlship service, called
over HTTP with an API key. Both take the same JSON body, ``{"instances": [[...], ...]}``, rows in
the bundle's feature order: SageMaker's ``/invocations`` answers ``{"predictions": [...]}``, the
REST route ``/v1/predict`` answers ``{"prediction": [...]}``, one per row, with the class
probabilities of classifiers alongside.

The gate has two phases:

1. golden: the bundle's held-out rows in one request; every prediction must equal the one the
   model gave at training time (exact labels for classifiers, a tight tolerance for regressors);
2. load: a bounded number of single-row requests at a fixed concurrency; the gate fails when
   the error rate or the p99 latency is above its threshold.

Every failure to reach the target is an error from :mod:`pipelines.targets`, each naming the
problem and the fix; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import MlshipError
from pipelines.targets import EndpointError, InvocationFailed, Target, make_target

MAX_REQUESTS = 10_000
MAX_CONCURRENCY = 64
# Regressors may be served through ONNX (float32) while golden values were recorded in float64.
REGRESSION_REL_TOL = 1e-4
REGRESSION_ABS_TOL = 1e-6
PROBABILITY_ABS_TOL = 1e-4


class SmokeFailed(MlshipError):
    """The deployed model failed the post-deploy gate."""

    exit_code = 4


def request_body(rows: Sequence[Sequence[float | None]]) -> bytes:
    """The SageMaker-contract request for these rows (NaN and None both become null)."""
    clean = [[None if v is None or math.isnan(v) else v for v in row] for row in rows]
    return json.dumps({"instances": clean}, allow_nan=False).encode()


def parse_predictions(body: bytes, expected_rows: int, source: str) -> list[Any]:
    """Extract the per-row predictions from a response body.

    Accepts ``{"predictions": [...]}`` (SageMaker route) or ``{"prediction": [...]}`` (REST
    route), where each item is a label/value or an object with a ``label`` (or
    ``prediction``/``value``) field.

    Raises:
        InvocationFailed: when the body is not such a document, or the row count differs.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvocationFailed(
            f"{source} answered something that is not JSON: {body[:200]!r}"
        ) from e
    predictions = None
    if isinstance(doc, dict):
        predictions = doc.get("predictions", doc.get("prediction"))
    if not isinstance(predictions, list):
        raise InvocationFailed(
            f"{source} answered JSON without a 'predictions' list: {str(doc)[:200]}"
        )
    if len(predictions) != expected_rows:
        raise InvocationFailed(
            f"{source} answered {len(predictions)} predictions for {expected_rows} rows."
        )
    labels: list[Any] = []
    for item in predictions:
        if isinstance(item, dict):
            key = next((k for k in ("label", "prediction", "value") if k in item), None)
            if key is None:
                raise InvocationFailed(
                    f"{source} answered a prediction object without a label: {item}"
                )
            labels.append(item[key])
        else:
            labels.append(item)
    return labels


def _same(expected: Any, actual: Any, regression: bool) -> bool:
    if isinstance(expected, str) or isinstance(actual, str):
        return str(expected) == str(actual)
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    if regression:
        return math.isclose(
            float(expected), float(actual), rel_tol=REGRESSION_REL_TOL, abs_tol=REGRESSION_ABS_TOL
        )
    return float(expected) == float(actual)


def compare_golden(expected: Sequence[Any], actual: Sequence[Any], regression: bool) -> list[str]:
    """Return one line per row whose prediction differs from the recorded one."""
    return [
        f"row {i}: expected {e!r}, got {a!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True))
        if not _same(e, a, regression)
    ]


def parse_probabilities(body: bytes) -> list[list[float]] | None:
    """The answer's per-row class probabilities, or None when it has none."""
    doc = json.loads(body)
    probabilities = doc.get("probabilities") if isinstance(doc, dict) else None
    return probabilities if isinstance(probabilities, list) else None


def compare_probabilities(
    expected: Sequence[Sequence[float]], actual: Sequence[Any], tol: float = PROBABILITY_ABS_TOL
) -> list[str]:
    """Return one line per row whose class probabilities differ by more than ``tol``."""
    problems = []
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        if not isinstance(a, list) or len(a) != len(e):
            problems.append(f"row {i}: expected {len(e)} probabilities, got {a!r}")
        elif any(
            not isinstance(y, int | float) or abs(float(x) - float(y)) > tol
            for x, y in zip(e, a, strict=True)
        ):
            problems.append(f"row {i}: probabilities {a} differ from {list(e)}")
    return problems


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    """Outcome of the load phase."""

    requests: int
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None
    wall_s: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else 0.0

    def p(self, q: float) -> float | None:
        return percentile(self.latencies_s, q) if self.latencies_s else None


def run_load(
    target: Target, rows: Sequence[Sequence[float | None]], requests: int, concurrency: int
) -> LoadResult:
    """Send ``requests`` single-row requests, ``concurrency`` at a time, cycling over ``rows``.

    A request counts as an error when it raises or its answer is not exactly one prediction;
    latencies are measured on the successful requests.
    """
    bodies = [request_body([row]) for row in rows]
    result = LoadResult(requests=requests)

    def one(i: int) -> tuple[float | None, EndpointError | None]:
        start = time.perf_counter()
        try:
            parse_predictions(target.invoke(bodies[i % len(bodies)]), 1, target.description)
        except EndpointError as e:
            return None, e
        return time.perf_counter() - start, None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="smoke") as pool:
        for latency, error in pool.map(one, range(requests)):
            if error is not None:
                name = type(error).__name__
                result.errors[name] = result.errors.get(name, 0) + 1
                result.first_error = result.first_error or str(error)
            elif latency is not None:
                result.latencies_s.append(latency)
    result.wall_s = time.perf_counter() - started
    return result


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _check_bounds(args: argparse.Namespace) -> None:
    if not 0 < args.timeout <= 300:
        raise MlshipError("--timeout must be in (0, 300] seconds.")
    if not 0 <= getattr(args, "requests", 0) <= MAX_REQUESTS:
        raise MlshipError(f"--requests must be between 0 and {MAX_REQUESTS}.")
    if not 1 <= getattr(args, "concurrency", 1) <= MAX_CONCURRENCY:
        raise MlshipError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}.")
    if getattr(args, "max_error_rate", 0.0) < 0 or getattr(args, "max_p99_ms", 1.0) <= 0:
        raise MlshipError("--max-error-rate must be >= 0 and --max-p99-ms > 0.")


def invoke_command(args: argparse.Namespace) -> int:
    """``mlship invoke``: send one request and print the answer.

    The body is ``--body`` (JSON) or, with ``--bundle``, the bundle's first golden row.
    """
    _check_bounds(args)
    if args.body is not None:
        try:
            json.loads(args.body)
        except ValueError as e:
            raise MlshipError(
                f"--body is not valid JSON ({e}); write it as '{{\"instances\": [[1.0, 2.0]]}}'."
            ) from e
        body = args.body.encode()
    elif getattr(args, "bundle", None):
        from pipelines.bundle import load_bundle

        body = request_body(load_bundle(Path(args.bundle)).golden.inputs[:1])
    else:
        raise MlshipError("Pass --body '{\"instances\": [[...]]}' or --bundle DIR.")
    target = make_target(args, max_attempts=3)
    target.check()
    answer = target.invoke(body)
    try:
        print(json.dumps(json.loads(answer), indent=2))
    except ValueError:
        print(answer.decode("utf-8", "replace"))
    return 0


def smoke_command(args: argparse.Namespace) -> int:
    """``mlship smoke``: golden predictions, then a short bounded load against thresholds.

    Returns:
        0 when the gate passes.

    Raises:
        SmokeFailed: when predictions differ, or the error rate or p99 is over its threshold.
        EndpointError: when the target cannot be reached at all.
    """
    from pipelines.bundle import load_bundle

    _check_bounds(args)
    bundle = load_bundle(Path(args.bundle))
    golden = bundle.golden
    regression = bundle.manifest.task == "regression"
    target = make_target(args, max_attempts=3, pool_size=args.concurrency)
    target.check()

    answer = target.invoke(request_body(golden.inputs))
    actual = parse_predictions(answer, len(golden.inputs), target.description)
    mismatches = compare_golden(golden.predictions, actual, regression)
    probabilities = parse_probabilities(answer)
    if golden.probabilities is not None and probabilities is not None:
        if len(probabilities) != len(golden.probabilities):
            raise InvocationFailed(
                f"{target.description} answered {len(probabilities)} probability rows for "
                f"{len(golden.probabilities)} rows."
            )
        mismatches += compare_probabilities(golden.probabilities, probabilities)
    wrong_rows = len({m.split(":")[0] for m in mismatches})
    print(
        f"smoke: golden {len(golden.inputs) - wrong_rows}/{len(golden.inputs)} predictions "
        f"match {bundle.manifest.name} {bundle.manifest.version} on {target.description}"
        + ("" if probabilities is None else " (probabilities compared too)")
    )
    if mismatches:
        shown = "; ".join(mismatches[:5])
        raise SmokeFailed(
            f"{wrong_rows} of {len(golden.inputs)} golden predictions differ from the "
            f"bundle's ({shown}). The endpoint does not serve this bundle, or serves it wrongly: "
            "check the deployed mlship:modelDataKey and mlship:imageTag."
        )

    if args.requests == 0:
        print("smoke: load phase skipped (--requests 0)")
        print("smoke: PASS")
        return 0
    # The load phase measures single attempts: a retry would hide the error it retried.
    load_target = make_target(args, max_attempts=1, pool_size=args.concurrency)
    load = run_load(load_target, golden.inputs, args.requests, args.concurrency)
    p99 = load.p(99)
    print(
        f"smoke: load {load.requests} requests at concurrency {args.concurrency} in "
        f"{load.wall_s:.2f} s: errors {load.error_count} ({load.error_rate:.2%}), "
        f"p50 {_ms(load.p(50))}, p95 {_ms(load.p(95))}, p99 {_ms(p99)}"
    )
    problems: list[str] = []
    if load.error_rate > args.max_error_rate:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(load.errors.items()))
        problems.append(
            f"error rate {load.error_rate:.2%} is above {args.max_error_rate:.2%} ({kinds}; "
            f"first: {load.first_error})"
        )
    if p99 is not None and p99 * 1000 > args.max_p99_ms:
        problems.append(f"p99 latency {_ms(p99)} is above {args.max_p99_ms:g} ms")
    if problems:
        raise SmokeFailed("Post-deploy gate failed: " + "; ".join(problems) + ".")
    print("smoke: PASS")
    return 0
