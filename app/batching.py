"""Adaptive micro-batching: concurrent requests share one ``predict`` call.

For tabular models the cost of ``predict`` is mostly per call, not per row (a 100-tree forest
costs about the same for 1 row as for 64), so a service that calls it once per request wastes
most of its CPU under concurrency. :class:`MicroBatcher` sits behind the predict interface:
each request awaits :meth:`MicroBatcher.predict` with its own rows; one collector task
concatenates the rows queued at that moment into one matrix, calls the model once, and hands
each request exactly its slice of the result.

How a batch is formed (all on the event loop, so no locks):

- The collector takes everything already queued, up to ``max_batch_rows``. The model runs on
  the event loop, so requests that arrive while it runs queue up and form the next batch: the
  batch size follows the load by itself, with no timer.
- When the queue is empty it gives the event loop one more turn, so that requests whose bodies
  are being parsed can join, and keeps doing so only while each turn brings new requests, up to
  ``max_wait_s`` after the first request was queued. It never sleeps on a timer: a timed wait
  costs every request of a closed-loop client (one that sends its next request only after the
  answer) the whole wait, for nothing. A lone request is sent after one turn of the loop.
- A request larger than ``max_batch_rows`` is predicted on its own, never split; from
  :data:`OFF_LOOP_ROWS` rows in a worker thread, so that the event loop answers ``/ping``
  and parses other requests meanwhile (a 100 MiB Batch Transform mini-batch holds millions).
- When a batched call fails, each request of the batch is retried on its own, so a bad row
  fails only its own request (with the model's exception) and the others get their results.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from core.model import Prediction

PredictFn = Callable[[np.ndarray], Prediction]
# A lone request from this many rows is predicted in a worker thread: a millisecond or more of
# model time, where the hand-off costs about a tenth of one.
OFF_LOOP_ROWS = 16_384


_COUNTERS = (
    ("batches", "Model predict calls made by the micro-batcher."),
    ("requests", "Requests answered through the micro-batcher."),
    ("rows", "Rows predicted by the micro-batcher."),
    ("retried_batches", "Batches that failed and were retried request by request."),
    ("failed_requests", "Requests whose own rows the model refused."),
)


class BatchStats:
    """Counters of one micro-batcher: ints for the benchmark and tests, and the same counts as
    prometheus_client counters for ``/metrics`` (with several workers their values live in the
    multiprocess files, so a scrape sums every worker's)."""

    def __init__(self) -> None:
        self.batches = 0
        self.requests = 0
        self.rows = 0
        self.retried_batches = 0
        self.failed_requests = 0
        self.counters = {
            name: Counter(f"mlship_microbatch_{name}", doc, registry=None)
            for name, doc in _COUNTERS
        }
        self._batches = self.counters["batches"]
        self._requests = self.counters["requests"]
        self._rows = self.counters["rows"]

    @property
    def mean_batch_rows(self) -> float:
        return self.rows / self.batches if self.batches else 0.0

    def batch(self, requests: int, rows: int) -> None:
        """One predict call for ``requests`` requests of ``rows`` rows in all."""
        self.batches += 1
        self.requests += requests
        self.rows += rows
        self._batches.inc()
        self._requests.inc(requests)
        self._rows.inc(rows)

    def retried(self) -> None:
        self.retried_batches += 1
        self.counters["retried_batches"].inc()

    def failed(self) -> None:
        self.failed_requests += 1
        self.counters["failed_requests"].inc()


@dataclass
class _Pending:
    X: np.ndarray
    future: asyncio.Future[Prediction]
    enqueued: float = field(default_factory=time.perf_counter)


def split_prediction(prediction: Prediction, sizes: list[int]) -> list[Prediction]:
    """Split a batch prediction back into consecutive per-request predictions of ``sizes`` rows.

    Raises:
        ValueError: when the sizes do not add up to the rows of the prediction.
    """
    if sum(sizes) != len(prediction):
        raise ValueError(
            f"the model returned {len(prediction)} predictions for {sum(sizes)} rows; a "
            "batched predict must return one prediction per input row"
        )
    parts: list[Prediction] = []
    start = 0
    for n in sizes:
        stop = start + n
        proba = prediction.probabilities
        parts.append(
            Prediction(
                labels=prediction.labels[start:stop],
                probabilities=None if proba is None else proba[start:stop],
            )
        )
        start = stop
    return parts


def join_predictions(parts: list[Prediction]) -> Prediction:
    """Consecutive predictions of the same model as one (the inverse of
    :func:`split_prediction`)."""
    probabilities = [p.probabilities for p in parts if p.probabilities is not None]
    return Prediction(
        labels=np.concatenate([p.labels for p in parts]),
        probabilities=np.concatenate(probabilities) if len(probabilities) == len(parts) else None,
    )


class MicroBatcher:
    """Coalesce concurrent ``predict`` calls into one call of ``predict_fn``.

    Args:
        predict_fn: The model's predict: (rows, n_features) float64 matrix -> Prediction with
            one entry per row. Called one call at a time: on the event loop, or in a worker
            thread for a lone request of :data:`OFF_LOOP_ROWS` rows or more.
        max_batch_rows: Upper bound on the rows of one call (a larger single request still
            goes alone).
        max_wait_s: Upper bound on how long the first request of a batch may wait for others
            (while they keep arriving). 0: batches are only what queued while the model ran.
    """

    def __init__(
        self, predict_fn: PredictFn, max_batch_rows: int = 64, max_wait_s: float = 0.001
    ) -> None:
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be 0 or more, got {max_wait_s}")
        self._predict_fn = predict_fn
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def predict(self, X: np.ndarray) -> Prediction:
        """Predict the rows of one request; resolves when its batch has been predicted."""
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        if wakeup is None or self._task is None or self._task.done():
            # Bound to this loop: a batcher outlives a loop only in tests that run several.
            wakeup = self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._collect(wakeup), name="mlship-micro-batcher")
        pending = _Pending(X=X, future=loop.create_future())
        self._queue.append(pending)
        wakeup.set()
        return await pending.future

    async def close(self) -> None:
        """Finish the queued requests, then stop the collector."""
        self._closed = True
        if self._task is not None and not self._task.done() and self._wakeup is not None:
            self._wakeup.set()
            await self._task

    async def _collect(self, wakeup: asyncio.Event) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = await self._take_batch()
            if len(batch) == 1 and batch[0].X.shape[0] >= OFF_LOOP_ROWS:
                await self._resolve_off_loop(batch[0])
            else:
                self._run(batch)

    async def _take_batch(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch = [first]
        rows = first.X.shape[0]
        deadline = first.enqueued + self.max_wait_s
        arriving = True  # the first turn of the loop is always worth a look
        while rows < self.max_batch_rows:
            if self._queue:
                nxt = self._queue[0]
                if rows + nxt.X.shape[0] > self.max_batch_rows:
                    break
                batch.append(self._queue.popleft())
                rows += nxt.X.shape[0]
                continue
            # Nothing queued: give the event loop another turn (requests being parsed join),
            # but only while turns keep bringing requests, and never past the wait bound.
            if self._closed or not arriving or time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0)
            arriving = bool(self._queue)
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # a cancelled request drops out
        if not live:
            return
        if len(live) == 1:
            self.stats.batch(1, live[0].X.shape[0])
            self._resolve_one(live[0])
            return
        sizes = [p.X.shape[0] for p in live]
        self.stats.batch(len(live), sum(sizes))
        try:
            parts = split_prediction(self._predict_fn(np.concatenate([p.X for p in live])), sizes)
        except Exception:  # one bad request must not fail the others: retry each alone
            self.stats.retried()
            for p in live:
                self._resolve_one(p)
            return
        for p, part in zip(live, parts, strict=True):
            p.future.set_result(part)

    def _resolve_one(self, pending: _Pending) -> None:
        try:
            result = self._predict_alone(pending.X)
        except Exception as e:  # handed to the request that caused it, which re-raises it
            self.stats.failed()
            pending.future.set_exception(e)
            return
        pending.future.set_result(result)

    async def _resolve_off_loop(self, pending: _Pending) -> None:
        """:meth:`_resolve_one` with the model in a worker thread; the result is handed over
        here, on the loop (a future is not thread-safe)."""
        if pending.future.done():  # cancelled
            return
        self.stats.batch(1, pending.X.shape[0])
        try:
            result = await run_in_threadpool(self._predict_alone, pending.X)
        except Exception as e:
            self.stats.failed()
            if not pending.future.done():
                pending.future.set_exception(e)
            return
        if not pending.future.done():
            pending.future.set_result(result)

    def _predict_alone(self, X: np.ndarray) -> Prediction:
        result = self._predict_fn(X)
        if len(result) != X.shape[0]:
            split_prediction(result, [X.shape[0]])  # raises with the reason
        return result


class BatchingPredictor:
    """A :class:`~app.predictor.Predictor` that micro-batches concurrent requests."""

    def __init__(self, predict_fn: PredictFn, max_batch_rows: int, max_wait_s: float) -> None:
        self.batcher = MicroBatcher(predict_fn, max_batch_rows, max_wait_s)

    async def predict(self, X: np.ndarray) -> Prediction:
        return await self.batcher.predict(X)

    async def aclose(self) -> None:
        await self.batcher.close()

    def collector(self) -> Collector:
        """The batcher's prometheus_client counters, for a registry to expose."""
        return _BatchCollector(self.batcher.stats)


class _BatchCollector(Collector):
    def __init__(self, stats: BatchStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        for counter in self.stats.counters.values():
            yield from counter.collect()
