"""The micro-batcher: coalescing, exact splitting, bounds, and failure isolation."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.batching import OFF_LOOP_ROWS, MicroBatcher, split_prediction
from core.errors import InvalidInput
from core.model import Model, Prediction
from tests.app.conftest import Held
from tests.compare import assert_same_prediction


class CountingPredict:
    """The real model's predict, recording the rows of every call."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.calls: list[int] = []

    def __call__(self, X: np.ndarray) -> Prediction:
        self.calls.append(X.shape[0])
        return self.model.predict(X)


async def _gather(batcher: MicroBatcher, requests: list[np.ndarray]) -> list[Prediction]:
    return list(await asyncio.gather(*(batcher.predict(X) for X in requests)))


def test_batcher_coalesces_concurrent_requests_into_one_predict_call(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=0.0)
    requests = [logistic_X[i : i + 1] for i in range(20)]

    results = asyncio.run(_gather(batcher, requests))

    assert predict.calls == [20]
    assert batcher.stats.batches == 1
    assert batcher.stats.requests == 20
    for X, result in zip(requests, results, strict=True):
        assert_same_prediction(result, logistic_model.predict(X))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=25),
    max_batch_rows=st.integers(min_value=1, max_value=100),
)
def test_batcher_returns_each_request_exactly_its_own_rows(
    forest_model: Model, forest_X: np.ndarray, sizes: list[int], max_batch_rows: int
) -> None:
    predict = CountingPredict(forest_model)
    batcher = MicroBatcher(predict, max_batch_rows=max_batch_rows, max_wait_s=0.0)
    offsets = np.cumsum([0, *sizes])
    pool = np.concatenate([forest_X] * 10)
    requests = [pool[a:b] for a, b in itertools.pairwise(offsets)]

    results = asyncio.run(_gather(batcher, requests))

    expected = split_prediction(forest_model.predict(pool[: offsets[-1]]), sizes)
    for size, result, want in zip(sizes, results, expected, strict=True):
        assert len(result) == size
        assert_same_prediction(result, want)
    # A call never exceeds the bound, except a single request that is larger on its own.
    assert all(n <= max(max_batch_rows, max(sizes)) for n in predict.calls)
    assert sum(predict.calls) == sum(sizes)
    assert batcher.stats.rows == sum(sizes)


def test_batcher_sends_a_request_larger_than_the_bound_alone(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    batcher = MicroBatcher(predict, max_batch_rows=8, max_wait_s=0.0)
    requests = [logistic_X[:3], logistic_X[3:23], logistic_X[23:26]]

    results = asyncio.run(_gather(batcher, requests))

    assert predict.calls == [3, 20, 3]
    for X, result in zip(requests, results, strict=True):
        assert_same_prediction(result, logistic_model.predict(X))


def test_batcher_failing_request_fails_alone_and_others_get_results(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=0.0)
    bad = logistic_X[5:7].copy()
    bad[1, 3] = np.nan  # LogisticRegression refuses NaN: the whole batched call fails
    requests = [logistic_X[:2], bad, logistic_X[10:11]]

    async def run() -> list[Prediction | BaseException]:
        return list(
            await asyncio.gather(*(batcher.predict(X) for X in requests), return_exceptions=True)
        )

    good_a, failed, good_b = asyncio.run(run())

    # the model's refusal (core.model turns scikit-learn's ValueError into a 422 error)
    assert isinstance(failed, InvalidInput)
    assert isinstance(failed.__cause__, ValueError)
    assert "NaN" in str(failed)
    assert isinstance(good_a, Prediction)
    assert isinstance(good_b, Prediction)
    assert_same_prediction(good_a, logistic_model.predict(requests[0]))
    assert_same_prediction(good_b, logistic_model.predict(requests[2]))
    assert predict.calls == [5, 2, 2, 1]  # the batch, then each request alone
    assert batcher.stats.retried_batches == 1
    assert batcher.stats.failed_requests == 1


def test_batcher_rejects_a_model_that_returns_the_wrong_number_of_rows(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    def short(X: np.ndarray) -> Prediction:
        return logistic_model.predict(X[:-1])

    batcher = MicroBatcher(short, max_batch_rows=64, max_wait_s=0.0)

    with pytest.raises(ValueError, match="returned 2 predictions for 3 rows"):
        asyncio.run(batcher.predict(logistic_X[:3]))


def test_batcher_does_not_delay_a_lone_request_by_the_wait_bound(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    # A bound of an hour: a batcher that waited for it would trip the 60 s hang guard below.
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=3600.0)

    async def run() -> Prediction:
        return await asyncio.wait_for(batcher.predict(logistic_X[:1]), timeout=60)

    result = asyncio.run(run())

    # With no other request arriving, it is sent at once, not after the bound.
    assert predict.calls == [1]
    assert_same_prediction(result, logistic_model.predict(logistic_X[:1]))


@pytest.mark.parametrize(("max_wait", "coalesced"), [(5.0, True), (0.0, False)])
def test_batcher_collects_requests_that_keep_arriving_within_the_wait_bound(
    logistic_model: Model, logistic_X: np.ndarray, max_wait: float, coalesced: bool
) -> None:
    predict = CountingPredict(logistic_model)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=max_wait)

    async def staggered(i: int) -> Prediction:
        for _ in range(i):  # request i reaches the batcher i turns of the event loop later
            await asyncio.sleep(0)
        return await batcher.predict(logistic_X[i : i + 1])

    async def run() -> list[Prediction]:
        return list(await asyncio.gather(*(staggered(i) for i in range(10))))

    results = asyncio.run(run())

    assert (predict.calls == [10]) is coalesced
    assert sum(predict.calls) == 10
    for i, result in enumerate(results):
        assert_same_prediction(result, logistic_model.predict(logistic_X[i : i + 1]))


def test_batcher_dispatches_at_the_wait_bound_while_requests_keep_coming(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    max_wait = 0.05
    batcher = MicroBatcher(predict, max_batch_rows=1_000_000, max_wait_s=max_wait)

    async def stream() -> None:
        first = asyncio.ensure_future(batcher.predict(logistic_X[:1]))
        others = []
        while not first.done():  # a new request on every turn of the loop, for ever
            others.append(asyncio.ensure_future(batcher.predict(logistic_X[1:2])))
            await asyncio.sleep(0)
        await asyncio.gather(*others)

    async def run() -> None:
        # A batcher that waited for the stream to pause would never dispatch: the hang guard
        # fails it (how soon after the bound it dispatches is for make bench, not a test).
        await asyncio.wait_for(stream(), timeout=60)

    asyncio.run(run())

    assert len(predict.calls) >= 2


def test_batcher_cancelled_request_does_not_disturb_the_others(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    predict = CountingPredict(logistic_model)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=0.0)

    async def run() -> list[Prediction]:
        cancelled = asyncio.ensure_future(batcher.predict(logistic_X[:4]))
        kept = [asyncio.ensure_future(batcher.predict(logistic_X[i : i + 1])) for i in range(3)]
        await asyncio.sleep(0)
        cancelled.cancel()
        return list(await asyncio.gather(*kept))

    results = asyncio.run(run())

    assert predict.calls == [3]
    for i, result in enumerate(results):
        assert_same_prediction(result, logistic_model.predict(logistic_X[i : i + 1]))


def test_batcher_close_finishes_queued_requests_then_refuses_new_ones(
    regression_model: Model, regression_X: np.ndarray
) -> None:
    batcher = MicroBatcher(regression_model.predict, max_batch_rows=4, max_wait_s=0.0)

    async def run() -> list[Prediction]:
        futures = [
            asyncio.ensure_future(batcher.predict(regression_X[i : i + 1])) for i in range(10)
        ]
        await asyncio.sleep(0)
        await batcher.close()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.predict(regression_X[:1])
        return list(await asyncio.gather(*futures))

    results = asyncio.run(run())

    expected = regression_model.predict(regression_X[:10])
    np.testing.assert_allclose(np.concatenate([r.labels for r in results]), expected.labels)
    assert all(r.probabilities is None for r in results)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_rows": 0}, "max_batch_rows must be at least 1"),
        ({"max_wait_s": -1.0}, "max_wait_s"),
    ],
)
def test_batcher_refuses_invalid_bounds(
    logistic_model: Model, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(logistic_model.predict, **kwargs)  # type: ignore[arg-type]


def test_batcher_predicts_a_lone_large_request_while_the_loop_runs(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    """A lone request of OFF_LOOP_ROWS rows is predicted in a worker thread: the event loop
    runs meanwhile (here: the coroutine that releases the model), and the rows come back."""
    predict = Held(logistic_model.predict)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=0.0)
    X = np.resize(logistic_X, (OFF_LOOP_ROWS, logistic_X.shape[1]))

    async def run() -> Prediction:
        pending = asyncio.ensure_future(batcher.predict(X))
        while not predict.started.is_set():
            await asyncio.sleep(0.001)
        predict.release.set()  # only reached while the model runs if the loop is free
        return await pending

    result = asyncio.run(run())

    assert predict.released == [True] and predict.on_loop == [False]
    assert_same_prediction(result, logistic_model.predict(X))
    assert (batcher.stats.batches, batcher.stats.rows) == (1, OFF_LOOP_ROWS)


def test_batcher_predicts_small_requests_on_the_loop_and_fails_a_large_one_alone(
    logistic_model: Model, logistic_X: np.ndarray
) -> None:
    """Below OFF_LOOP_ROWS no hand-off; a large request's error reaches that request."""
    predict = Held(logistic_model.predict, wait_s=0)
    batcher = MicroBatcher(predict, max_batch_rows=64, max_wait_s=0.0)
    bad = np.full((OFF_LOOP_ROWS, logistic_X.shape[1]), np.inf)

    async def run() -> tuple[Prediction, BaseException | None]:
        small = await batcher.predict(logistic_X[:3])
        try:
            await batcher.predict(bad)
        except Exception as e:
            return small, e
        return small, None

    small, error = asyncio.run(run())

    assert predict.on_loop == [True, False]
    assert len(small) == 3
    assert isinstance(error, InvalidInput)
    assert batcher.stats.failed_requests == 1
