"""Post-deploy gate (``mlship smoke``) and one-off requests (``mlship invoke``).

A target is either a SageMaker endpoint (``sagemaker-runtime`` InvokeEndpoint, with the standard
AWS configuration, ``AWS_ENDPOINT_URL`` included) or the base URL of an mlship service, called
over HTTP with an API key. Both take the same JSON body, ``{"instances": [[...], ...]}``, rows in
the bundle's feature order: SageMaker's ``/invocations`` answers ``{"predictions": [...]}``, the
REST route ``/v1/predict`` answers ``{"predictions": [...]}``, one per row, with the class
probabilities of classifiers alongside.

The gate has two phases:

1. golden: the bundle's held-out rows in one request; every prediction must equal the one the
   model gave at training time (exact labels for classifiers, a tight tolerance for regressors);
2. load: a bounded number of single-row requests at a fixed concurrency; the gate fails when
   the error rate or the p99 latency is above its threshold.

Every failure to reach the target is an error from :mod:`pipelines.release.targets`, each naming the
problem and the fix; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.bundle import Bundle
from core.errors import MlshipError
from pipelines.release.targets import EndpointError, InvocationFailed, Target

MAX_REQUESTS = 10_000
MAX_CONCURRENCY = 64
# Regressors may be served through ONNX (float32) while golden values were recorded in float64.
REGRESSION_REL_TOL = 1e-4
REGRESSION_ABS_TOL = 1e-6
PROBABILITY_ABS_TOL = 1e-4


class SmokeFailed(MlshipError):
    """The deployed model failed the post-deploy gate."""

    exit_code = 4


Row = Sequence[float | str | None]


def request_body(rows: Sequence[Row]) -> bytes:
    """The SageMaker-contract request for these rows (NaN and None both become null)."""
    clean = [
        [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row]
        for row in rows
    ]
    return json.dumps({"instances": clean}, allow_nan=False).encode()


def parse_predictions(body: bytes, expected_rows: int, source: str) -> list[Any]:
    """Extract the per-row predictions from a response body.

    Accepts ``{"predictions": [...]}`` (every mlship route) or ``{"prediction": [...]}`` (mlship
    0.1's REST route, still deployed somewhere), where each item is a label/value or an object
    with a ``label`` (or ``prediction``/``value``) field.

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


def run_load(target: Target, rows: Sequence[Row], requests: int, concurrency: int) -> LoadResult:
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


@dataclass(frozen=True)
class SmokeOptions:
    """The post-deploy gate's load phase and thresholds."""

    requests: int = 200
    concurrency: int = 4
    max_p99_ms: float = 500.0
    max_error_rate: float = 0.01

    def check(self) -> None:
        """Refuse values outside the bounds the gate may use (a typo must not run 10^9 calls)."""
        if not 0 <= self.requests <= MAX_REQUESTS:
            raise MlshipError(f"--requests must be between 0 and {MAX_REQUESTS}.")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise MlshipError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}.")
        if self.max_error_rate < 0 or self.max_p99_ms <= 0:
            raise MlshipError("--max-error-rate must be >= 0 and --max-p99-ms > 0.")


TargetFactory = Callable[[int, int], Target]
"""``(max_attempts, pool_size) -> Target``: the gate builds one target per phase."""


def run_smoke(
    bundle: Bundle,
    make_target: TargetFactory,
    options: SmokeOptions,
    say: Callable[[str], None] = print,
) -> None:
    """The post-deploy gate: golden predictions, then a short bounded load against thresholds.

    Args:
        bundle: The deployed bundle (its golden rows and recorded predictions).
        make_target: Builds the endpoint client for a phase.
        options: Load size and thresholds.
        say: Where progress lines go.

    Raises:
        SmokeFailed: when predictions differ, or the error rate or p99 is over its threshold.
        EndpointError: when the target cannot be reached at all.
    """
    options.check()
    golden = bundle.golden
    regression = bundle.manifest.task == "regression"
    target = make_target(3, options.concurrency)
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
    say(
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

    if options.requests == 0:
        say("smoke: load phase skipped (--requests 0)")
        say("smoke: PASS")
        return
    # The load phase measures single attempts: a retry would hide the error it retried.
    load_target = make_target(1, options.concurrency)
    load = run_load(load_target, golden.inputs, options.requests, options.concurrency)
    p99 = load.p(99)
    say(
        f"smoke: load {load.requests} requests at concurrency {options.concurrency} in "
        f"{load.wall_s:.2f} s: errors {load.error_count} ({load.error_rate:.2%}), "
        f"p50 {_ms(load.p(50))}, p95 {_ms(load.p(95))}, p99 {_ms(p99)}"
    )
    problems: list[str] = []
    if load.error_rate > options.max_error_rate:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(load.errors.items()))
        problems.append(
            f"error rate {load.error_rate:.2%} is above {options.max_error_rate:.2%} ({kinds}; "
            f"first: {load.first_error})"
        )
    if p99 is not None and p99 * 1000 > options.max_p99_ms:
        problems.append(f"p99 latency {_ms(p99)} is above {options.max_p99_ms:g} ms")
    if problems:
        raise SmokeFailed("Post-deploy gate failed: " + "; ".join(problems) + ".")
    say("smoke: PASS")
