"""The prediction cache: exact answers, canonical keys, bounds, counters, invalidation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sklearn.dummy import DummyClassifier

from app.cache import CachingPredictor, PredictionCache, canonical_rows, is_deterministic
from app.predictor import DirectPredictor
from core.model import Model, Prediction
from tests.compare import assert_same_prediction


class CountingPredict:
    def __init__(self, model: Model) -> None:
        self.model = model
        self.calls: list[np.ndarray] = []

    def __call__(self, X: np.ndarray) -> Prediction:
        self.calls.append(X.copy())
        return self.model.predict(X)


def test_cache_answers_repeated_rows_without_calling_the_model(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=1000)
    predict = CountingPredict(logistic_model)

    first = cache.predict("v1", logistic_X, predict)
    second = cache.predict("v1", logistic_X, predict)

    assert len(predict.calls) == 1
    assert_same_prediction(first, logistic_model.predict(logistic_X))
    assert_same_prediction(second, logistic_model.predict(logistic_X))
    assert (cache.hits, cache.misses) == (len(logistic_X), len(logistic_X))


def test_cache_predicts_only_the_missing_rows_of_a_partly_cached_request(
    forest_model: Model, forest_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=1000)
    predict = CountingPredict(forest_model)
    cache.predict("v1", forest_X[:10], predict)

    mixed = np.concatenate([forest_X[5:15], forest_X[:3]])
    result = cache.predict("v1", mixed, predict)

    np.testing.assert_array_equal(predict.calls[1], forest_X[10:15])
    assert_same_prediction(result, forest_model.predict(mixed))
    assert (cache.hits, cache.misses) == (8, 15)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=20),
    max_entries=st.integers(min_value=1, max_value=12),
)
def test_cache_results_always_equal_the_model_whatever_the_eviction(
    regression_model: Model, regression_X: np.ndarray, picks: list[int], max_entries: int
) -> None:
    cache = PredictionCache(max_entries=max_entries)
    for start in picks:
        X = regression_X[start : start + 3]
        assert_same_prediction(
            cache.predict("v1", X, regression_model.predict), regression_model.predict(X)
        )
        assert len(cache) <= max_entries
    assert cache.hits + cache.misses == 3 * len(picks)


def test_cache_keys_are_canonical_for_negative_zero_and_nan() -> None:
    a = np.array([[0.0, np.nan, 1.5]])
    b = np.array([[-0.0, -np.nan, 1.5]], dtype=np.float32)
    other_nan = np.frombuffer(np.array([0x7FF8000000000001], dtype=np.uint64).tobytes(), np.float64)
    c = np.array([[0.0, other_nan[0], 1.5]])

    assert canonical_rows(a).tobytes() == canonical_rows(b).tobytes()
    assert canonical_rows(a).tobytes() == canonical_rows(c).tobytes()
    assert canonical_rows(a).tobytes() != canonical_rows(np.array([[0.0, np.nan, 1.25]])).tobytes()


def test_cache_evicts_the_least_recently_used_row(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=2)
    predict = CountingPredict(logistic_model)
    a, b, c = (logistic_X[i : i + 1] for i in range(3))
    cache.predict("v1", a, predict)
    cache.predict("v1", b, predict)
    cache.predict("v1", a, predict)  # a is now the most recently used
    cache.predict("v1", c, predict)  # evicts b

    calls_before = len(predict.calls)
    cache.predict("v1", a, predict)
    assert len(predict.calls) == calls_before
    cache.predict("v1", b, predict)
    assert len(predict.calls) == calls_before + 1
    assert len(cache) == 2


def test_cache_never_serves_rows_across_model_versions(
    logistic_model: Model, forest_model: Model, logistic_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=1000)
    cache.predict("logistic-v1", logistic_X, logistic_model.predict)

    result = cache.predict("forest-v1", logistic_X, forest_model.predict)

    assert_same_prediction(result, forest_model.predict(logistic_X))
    assert cache.hits == 0
    assert len(cache) == len(logistic_X)


def test_cache_drops_a_store_for_a_version_that_is_no_longer_current(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=1000)
    found = cache.lookup("v1", logistic_X[:2])
    cache.invalidate()
    cache.lookup("v2", logistic_X[2:3])

    result = cache.store("v1", found, logistic_model.predict(logistic_X[:2]))

    assert_same_prediction(result, logistic_model.predict(logistic_X[:2]))
    assert len(cache) == 0  # nothing from v1 was kept


def test_cache_store_refuses_a_prediction_of_the_wrong_length(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    cache = PredictionCache(max_entries=10)
    found = cache.lookup("v1", logistic_X[:3])
    with pytest.raises(ValueError, match="expected 3 predictions, got 2"):
        cache.store("v1", found, logistic_model.predict(logistic_X[:2]))


def test_cache_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        PredictionCache(max_entries=0)


def test_is_deterministic_accepts_a_fitted_model_and_refuses_a_random_one(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=len(logistic_X))
    random_model = DummyClassifier(strategy="uniform").fit(logistic_X, y)

    def random_predict(X: np.ndarray) -> Prediction:
        return Prediction(labels=random_model.predict(X), probabilities=None)

    assert is_deterministic(logistic_model.predict, logistic_X)
    assert not is_deterministic(random_predict, logistic_X)


def test_caching_predictor_sends_a_request_over_its_row_bound_to_the_model_unlooked_up(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    """A request of more rows than the bound goes to the model whole, every time, and leaves
    the cache as it was: nothing stored, no hit or miss, its rows counted as skipped. A
    request at the bound is looked up and stored."""
    predict = CountingPredict(logistic_model)
    cache = PredictionCache(max_entries=1000)
    caching = CachingPredictor(DirectPredictor(predict), cache, "v1", max_request_rows=4)
    large, small = logistic_X[:5], logistic_X[5:9]

    async def run() -> list[Prediction]:
        return [await caching.predict(X) for X in (large, large, small, small)]

    answers = asyncio.run(run())

    for X, answer in zip((large, large, small, small), answers, strict=True):
        assert_same_prediction(answer, logistic_model.predict(X))
    assert [len(c) for c in predict.calls] == [5, 5, 4]  # the second small one: from the cache
    assert (cache.hits, cache.misses, cache.skipped, len(cache)) == (4, 4, 10, 4)
    registry = CollectorRegistry()
    registry.register(caching.collector())
    assert registry.get_sample_value("mlship_prediction_cache_skipped_rows_total") == 10


def test_caching_predictor_refuses_a_zero_row_bound(logistic_model: Model) -> None:
    with pytest.raises(ValueError, match="max_request_rows must be at least 1"):
        CachingPredictor(
            DirectPredictor(logistic_model.predict), PredictionCache(10), "v1", max_request_rows=0
        )
