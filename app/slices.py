"""A large request cut into row slices that run on several threads at once.

A worker with CPUs to itself (fewer workers than CPUs, as with ``MLSHIP_WORKERS=1``) would
leave all but one idle while it predicts a Batch Transform mini-batch of ~150,000 rows and
writes its answer. Both work row by row, mostly without the GIL (onnxruntime, numpy and
pyarrow release it; orjson holds it while it writes numbers), so a large request is predicted
a slice per thread (:func:`sliced_predict`), its drift counted (``app/monitoring.py``) and its
answer written (``app/answers.py``) the same way; an answer in more slices than threads, so
that one thread's orjson runs while another's numpy and pyarrow work does. A JSON Lines body's
two checks run on two of these threads at once (``app/jsonlines.py``).
For the 5-feature logistic model, 146,000 rows predicted in 7.4 ms whole and in 3.9 ms in 2
slices on 2 threads, joined.

With a worker per CPU (the default) a worker has one thread and nothing is sliced: a second
thread would only take a busy CPU from another worker. The same holds for pyarrow's own pool,
which parses large CSV and JSON Lines bodies and by default has a thread per CPU in every
worker process, and so do the BLAS and OpenMP pools scikit-learn computes with
(:func:`set_native_threads`, :func:`on_one_openmp_thread`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np

from app.batching import join_predictions
from core.model import Prediction
from core.runtime import cpus_available

T = TypeVar("T")
R = TypeVar("R")

PredictFn = Callable[[np.ndarray], Prediction]

# Fewest rows a slice gets: below about this, handing a slice to a thread costs more than its
# work.
SLICE_ROWS = 16_384


class RowSlices:
    """Runs a function over row slices of a large input on ``threads`` threads (the calling
    thread runs the first slice)."""

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._pool = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="mlship-slice")
            if threads > 1
            else None
        )

    def sizes(self, rows: int, per_thread: int = 1) -> list[int]:
        """The rows of each slice, in order: ``per_thread`` slices for each thread (fewer when
        a slice would have fewer than :data:`SLICE_ROWS`), or ``[rows]`` when slicing would
        not pay (one thread, or too few rows for two slices)."""
        slices = min(self.threads * per_thread, rows // SLICE_ROWS)
        if self._pool is None or slices < 2:
            return [rows]
        return [rows * (k + 1) // slices - rows * k // slices for k in range(slices)]

    def rows(self, X: np.ndarray) -> list[np.ndarray]:
        """``X``'s row slices (views), as :meth:`sizes` cuts them (``[X]`` itself when it is
        not sliced: no arithmetic on the single-row path)."""
        sizes = self.sizes(X.shape[0])
        if len(sizes) < 2:
            return [X]
        bounds = np.cumsum([0, *sizes]).tolist()
        return [X[a:b] for a, b in pairwise(bounds)]

    def map(self, fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
        """``[fn(part) for part in parts]``, the parts dealt out to the threads in turn (the
        calling thread takes the first, and every ``threads``-th after it)."""
        if self._pool is None or len(parts) < 2:
            return [fn(part) for part in parts]
        threads = min(self.threads, len(parts))
        others = [self._pool.submit(_each, fn, parts[t::threads]) for t in range(1, threads)]
        try:
            first = _each(fn, parts[0::threads])
        finally:
            results = [other.result() for other in others]  # never leave a slice running
        done = [first, *results]
        return [done[k % threads][k // threads] for k in range(len(parts))]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _each(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    return [fn(part) for part in parts]


def request_threads(workers: int) -> int:
    """Threads one worker runs a large request's slices on: the CPUs the other workers leave
    it (1 with a worker per CPU, the default)."""
    return max(1, cpus_available() // workers)


def set_native_threads(threads: int) -> None:
    """Size the process-wide native thread pools of this worker: pyarrow's (its CSV and JSON
    readers) to the worker's ``threads``, and BLAS's (OpenBLAS, scikit-learn's linear models)
    to one thread, since a large request's slices already predict on ``threads`` threads at
    once. OpenMP's limit is per thread: :func:`on_one_openmp_thread` sets it where predictions
    run.

    Their defaults, a thread per CPU in every worker, oversubscribed the CPUs. pyarrow's put 4
    parsing threads beside the 2 workers' own on 2 CPUs: as a transform job drives the default
    server (2 workers, 2 requests at once), a 6 MB 5-feature request took 44-71 ms of server
    CPU for CSV and 51-76 for JSON Lines, 43-57 and 50-62 with a thread per worker (5 runs
    alternated, each lower by 1-15 ms; CSV 3.7-6.0 against 4.2-6.2 M rows/s). With the
    scikit-learn runtime, OpenBLAS's threads (which spin while they wait) then still took
    89-103 ms of CPU per CSV request and 102-108 per JSON Lines one, against 44-45 and 53-67
    on one thread: 2.7-3.1 against 5.9-6.0 M rows/s for CSV.
    """
    import pyarrow as pa

    pa.set_cpu_count(threads)
    _native_pools().limit(limits=1, user_api="blas")


@cache
def _native_pools() -> Any:
    """threadpoolctl's controller of the BLAS and OpenMP libraries loaded (found once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_openmp = threading.local()


def on_one_openmp_thread(predict: PredictFn) -> PredictFn:
    """``predict``, with OpenMP (scikit-learn's histogram gradient boosting and other Cython
    loops) limited to one thread on each thread that runs it, the first time it runs there:
    OpenMP keeps its limit per thread, and predictions run on the event loop's worker threads
    and the slices' threads, never on the thread that sized the other pools."""

    def run(X: np.ndarray) -> Prediction:
        if not getattr(_openmp, "limited", False):
            _native_pools().limit(limits=1, user_api="openmp")
            _openmp.limited = True
        return predict(X)

    return run


def sliced_predict(predict: PredictFn, slices: RowSlices) -> PredictFn:
    """``predict`` of a large matrix run in row slices on ``slices``' threads, joined.

    The model scores each row on its own, so the joined prediction is the whole one (but for
    the last bit scikit-learn's BLAS may round differently by where a row falls in a block,
    as it does by a micro-batch's other rows). When a slice fails, the whole matrix is
    predicted again on the calling thread: the error then names its row as the caller numbers
    it (a slice would number from its own start). With one thread, ``predict`` itself.
    """
    if slices.threads < 2:
        return predict

    def run(X: np.ndarray) -> Prediction:
        rows = slices.rows(X)
        if len(rows) < 2:
            return predict(X)
        try:
            parts = slices.map(predict, rows)
        except Exception:
            return predict(X)
        return join_predictions(parts)

    return run
