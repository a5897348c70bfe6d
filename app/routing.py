"""Two models in one service: which one answers a request, and the shadow comparison.

With ``MLSHIP_CHALLENGER_URI`` the service loads a second verified bundle beside the champion
(refused at start unless it takes the same requests: :func:`core.compatibility.
schema_differences`). A :class:`Rollout` then routes each request by the policy in
``MLSHIP_FLAGS_URI`` (``core/flags.py``), re-read every ``MLSHIP_FLAGS_REFRESH_SECONDS``:

- kill switch: the champion answers everything;
- flag / split: the ``new_model`` flag's allow and deny lists and its sticky ``percent`` of
  routing keys choose the challenger;
- shadow: when the champion answered, a sampled share of requests is scored by the challenger
  too, in a task the response never waits for; the paired answers feed the comparison metrics.

Without a challenger :func:`answer` is the champion's predict and nothing else, so the request
path costs what it did. Per-model metrics carry ``model_version``, ``role`` and ``mode``
(served or shadow), so A/B results can be compared in Prometheus and by the release gate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response

from app.metrics import LATENCY_BUCKETS
from app.predictor import Predictor
from app.runtime import build_predictor
from app.settings import AppSettings
from app.slices import RowSlices
from core.compatibility import schema_differences
from core.errors import MlshipError, ModelLoadError
from core.flags import (
    CHALLENGER_FLAG,
    FeatureFlags,
    FlagsUnreachable,
    digest,
    parse_flags,
    read_flags_source,
)
from core.model import Model, Prediction, load_model
from core.sources import resolve_model_uri

if TYPE_CHECKING:
    from app.service import Service

log = logging.getLogger("mlship.app")

MODEL_VERSION_HEADER = "X-Model-Version"


class RolloutMetrics:
    """Per-model and comparison metrics, on the service's (multi-process aware) registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        per_model = ("model_version", "role", "mode")
        self.requests = Counter(
            "mlship_model_requests",
            "Predict calls by model, failed ones included (mode: served answered the caller, "
            "shadow was scored beside the champion's answer).",
            per_model,
            registry=registry,
        )
        self.errors = Counter(
            "mlship_model_errors", "Failed predict calls by model.", per_model, registry=registry
        )
        self.latency = Histogram(
            "mlship_model_latency_seconds",
            "Seconds one predict call took, by model.",
            per_model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "mlship_model_predictions",
            'Predicted rows by model and class (regressors: class="value").',
            (*per_model, "class"),
            registry=registry,
        )
        self.compared = Counter(
            "mlship_shadow_compared_rows",
            "Rows scored by both the champion and the shadow challenger.",
            registry=registry,
        )
        self.agreeing = Counter(
            "mlship_shadow_agreeing_rows",
            "Compared rows where the challenger predicted the champion's class (classifiers).",
            registry=registry,
        )
        self.abs_difference = Counter(
            "mlship_shadow_abs_difference",
            "Sum over compared rows of |challenger - champion| (regressors).",
            registry=registry,
        )
        self.skipped = Counter(
            "mlship_shadow_skipped",
            "Sampled shadow requests not scored: too many shadow predictions in flight.",
            registry=registry,
        )
        self.policy_loads = Counter(
            "mlship_rollout_policy_loads",
            "Reads of the flags document by result (ok, refused: invalid, unreachable).",
            ("result",),
            registry=registry,
        )
        self.kill_switch = Gauge(
            "mlship_rollout_kill_switch",
            "1 while the policy's kill switch sends every request to the champion.",
            registry=registry,
            multiprocess_mode="max",
        )


@dataclass
class Arm:
    """One model with its predictor and its metric children (created once, not per request)."""

    model: Model
    predictor: Predictor
    role: str
    children: dict[str, Any]
    _class_children: dict[tuple[str, Any], Any]
    _metrics: RolloutMetrics

    @classmethod
    def build(cls, model: Model, predictor: Predictor, role: str, m: RolloutMetrics) -> Arm:
        children = {
            f"{kind}_{mode}": getattr(m, kind).labels(model.version, role, mode)
            for kind in ("requests", "errors", "latency")
            for mode in ("served", "shadow")
        }
        return cls(model, predictor, role, children, {}, m)

    def count(self, mode: str, labels: np.ndarray) -> None:
        if not self.model.is_classifier:
            self._child(mode, "value").inc(labels.shape[0])
            return
        if labels.shape[0] == 1:  # the common single-row request: no np.unique
            label = labels[0]
            self._child(mode, label.item() if isinstance(label, np.generic) else label).inc()
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, n in zip(values.tolist(), counts.tolist(), strict=True):
            self._child(mode, value).inc(n)

    def _child(self, mode: str, value: Any) -> Any:
        child = self._class_children.get((mode, value))
        if child is None:
            child = self._class_children[(mode, value)] = self._metrics.predictions.labels(
                self.model.version, self.role, mode, str(value)
            )
        return child


class Rollout:
    """Routes requests between the champion and the challenger by the current policy."""

    def __init__(
        self,
        champion: Arm,
        challenger: Arm,
        metrics: RolloutMetrics,
        flags_uri: str | None,
        refresh_seconds: float,
        shadow_max_in_flight: int,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.metrics = metrics
        self.flags_uri = flags_uri
        self.refresh_seconds = refresh_seconds
        self.shadow_max_in_flight = shadow_max_in_flight
        self.policy = FeatureFlags()  # champion only, until a document says otherwise
        self.features = champion.model.manifest.features
        self._index = {f.name: i for i, f in enumerate(self.features)}
        self._shadows: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._random = random.Random()  # noqa: S311 - sampling traffic, not a secret

    # -- policy ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the flags document; a good one replaces the policy, a bad or unreachable one
        is logged and the last good policy stays. Returns whether the policy was replaced."""
        if self.flags_uri is None:
            return False
        policy: FeatureFlags | None = None
        result, problem = "refused", ""
        try:
            raw = read_flags_source(self.flags_uri)
            policy = parse_flags(raw, f"MLSHIP_FLAGS_URI={self.flags_uri}", list(self._index))
        except FlagsUnreachable as e:
            result, problem = "unreachable", str(e)
        except MlshipError as e:
            problem = str(e)
        if policy is None:
            self.metrics.policy_loads.labels(result).inc()
            # One clear line, no traceback: the document is the problem, not the code.
            log.error("flags document %s, keeping the last good policy: %s", result, problem)
            return False
        self.metrics.policy_loads.labels("ok").inc()
        if policy != self.policy:
            log.info("rollout policy in force", extra={"policy": digest(policy)})
        self.policy = policy
        self.metrics.kill_switch.set(1 if policy.kill_switch else 0)
        return True

    def start(self) -> None:
        """Start re-reading the flags document in the background (in the app's event loop)."""
        if self.flags_uri is not None and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await asyncio.to_thread(self.refresh)

    async def aclose(self) -> None:
        tasks = [*self._shadows, *([self._refresher] if self._refresher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.challenger.predictor.aclose()

    # -- routing -----------------------------------------------------------------------------

    def routing_key(self, policy: FeatureFlags, request: Request, X: np.ndarray) -> str | None:
        """The request's key: the configured header, or the feature's value in the first row."""
        key = policy.routing_key
        if key.header is not None:
            return request.headers.get(key.header)
        assert key.field is not None  # noqa: S101 - RoutingKey validates exactly one is set
        j = self._index[key.field]
        if X.shape[0] == 0 or math.isnan(value := float(X[0, j])):
            return None
        categories = self.features[j].categories
        if categories is not None:
            return categories[int(value)] if 0 <= value < len(categories) else None
        return str(int(value)) if value.is_integer() else repr(value)

    def choose(self, policy: FeatureFlags, request: Request, X: np.ndarray) -> Arm:
        if not policy.challenger_on:
            return self.champion
        key = self.routing_key(policy, request, X)
        return self.challenger if policy.is_enabled(CHALLENGER_FLAG, key) else self.champion

    async def answer(
        self, service: Service, request: Request, X: np.ndarray, pin: str | None = None
    ) -> tuple[Prediction, Model]:
        """Predict with the model the policy chooses (or the ``pin``-ned version)."""
        policy = self.policy  # one policy for the whole request, even if a refresh lands
        if pin is not None:
            arm = self.challenger if pin == self.challenger.model.version else self.champion
        else:
            arm = self.choose(policy, request, X)
        arm.children["requests_served"].inc()
        started = time.perf_counter()
        try:
            prediction = await service.predict(X, arm.predictor)
        except Exception:
            arm.children["errors_served"].inc()
            raise
        finally:
            arm.children["latency_served"].observe(time.perf_counter() - started)
        arm.count("served", prediction.labels)
        if (
            arm is self.champion
            and pin is None
            and policy.shadow.percent > 0
            and not policy.kill_switch
            and self._random.random() * 100 < policy.shadow.percent
        ):
            self._shadow(X, prediction)
        return prediction, arm.model

    # -- shadow ------------------------------------------------------------------------------

    def _shadow(self, X: np.ndarray, champion: Prediction) -> None:
        if len(self._shadows) >= self.shadow_max_in_flight:
            self.metrics.skipped.inc()
            return
        task = asyncio.get_running_loop().create_task(self._compare(X, champion))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _compare(self, X: np.ndarray, champion: Prediction) -> None:
        arm = self.challenger
        arm.children["requests_shadow"].inc()
        started = time.perf_counter()
        try:
            prediction = await arm.predictor.predict(X)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the challenger's failure is a measurement, never the caller's
            arm.children["errors_shadow"].inc()
            log.warning("shadow challenger failed: %s: %s", type(e).__name__, e)
            return
        finally:
            arm.children["latency_shadow"].observe(time.perf_counter() - started)
        arm.count("shadow", prediction.labels)
        self.metrics.compared.inc(len(prediction))
        if arm.model.is_classifier:
            agree = int(np.count_nonzero(prediction.labels == champion.labels))
            self.metrics.agreeing.inc(agree)
        else:
            diff = np.abs(prediction.labels.astype(np.float64) - champion.labels)
            self.metrics.abs_difference.inc(float(diff.sum()))

    async def drain_shadows(self) -> None:
        """Wait for the shadow predictions in flight (shutdown, and tests)."""
        while self._shadows:
            await asyncio.gather(*list(self._shadows), return_exceptions=True)


async def answer(
    service: Service, request: Request, X: np.ndarray, pin: str | None = None
) -> tuple[Prediction, Model]:
    """The prediction for ``X`` and the model that made it (the champion without a rollout)."""
    rollout = service.rollout
    if rollout is None:
        return await service.predict(X), service.model
    return await rollout.answer(service, request, X, pin)


def stamp(response: Response, model: Model) -> Response:
    """Name the answering model version on the response."""
    response.headers[MODEL_VERSION_HEADER] = model.version
    return response


def load_challenger(settings: AppSettings, champion: Model, local: Path | None = None) -> Model:
    """Resolve, verify and check ``MLSHIP_CHALLENGER_URI`` against the champion.

    Args:
        local: Where the URI was already resolved to (``serve`` resolves it once for all
            workers); resolved here otherwise.

    Raises:
        ModelLoadError: the challenger cannot be loaded, has the champion's version, or does
            not take the champion's requests (the differences named).
    """
    uri = str(settings.challenger_uri)
    try:
        if local is None:
            local = resolve_model_uri(uri, settings.model_cache_dir, "MLSHIP_CHALLENGER_URI")
        challenger = load_model(local, estimator=False)
    except ModelLoadError:
        raise
    except MlshipError as e:
        raise ModelLoadError(f"Cannot load MLSHIP_CHALLENGER_URI={uri}: {e}") from e
    problems = schema_differences(champion.manifest, challenger.manifest)
    if problems:
        raise ModelLoadError(
            f"MLSHIP_CHALLENGER_URI={uri} does not take the champion's requests: "
            + "; ".join(problems)
            + ". Serve a challenger trained on the same features, task and classes."
        )
    if challenger.version == champion.version:
        raise ModelLoadError(
            f"MLSHIP_CHALLENGER_URI={uri} has the champion's version {champion.version!r}: "
            "answers could not be told apart. Serve another version as challenger."
        )
    return challenger


def build_rollout(
    settings: AppSettings,
    registry: CollectorRegistry,
    champion: Model,
    predictor: Predictor,
    challenger: Model | None = None,
    slices: RowSlices | None = None,
) -> Rollout | None:
    """Load the challenger beside ``champion`` (unless given loaded and checked), or None when
    none is configured.

    Raises:
        ModelLoadError: the challenger cannot be loaded, has the champion's version, or does
            not take the champion's requests (the differences named); the service must not
            start.
    """
    if settings.challenger_uri is None:
        return None
    if challenger is None:
        challenger = load_challenger(settings, champion)
    metrics = RolloutMetrics(registry)
    rollout = Rollout(
        Arm.build(champion, predictor, "champion", metrics),
        Arm.build(
            challenger,
            build_predictor(challenger, settings, slices=slices),
            "challenger",
            metrics,
        ),
        metrics,
        settings.flags_uri,
        settings.flags_refresh_seconds,
        settings.shadow_max_in_flight,
    )
    rollout.refresh()
    log.info(
        "challenger ready",
        extra={"model_version": challenger.version, "flags_uri": settings.flags_uri},
    )
    return rollout
