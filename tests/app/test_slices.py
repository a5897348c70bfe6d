"""A large request predicted in row slices on several threads answers exactly what the whole
matrix predicted at once answers, and an error in a slice is worded for the whole request."""

from __future__ import annotations

import io
import threading

import numpy as np
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from app.batching import join_predictions, split_prediction
from app.slices import SLICE_ROWS, RowSlices, sliced_predict
from core.bundle import load_bundle
from core.errors import InvalidInput
from core.model import Model, Prediction, load_model
from core.onnx_model import OnnxModel
from pipelines.onnx_export import add_onnx
from tests.app.conftest import ClientFactory
from tests.factories import make_bundle


def _rows(X: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows drawn from ``X``, each scaled a little (distinct rows)."""
    rng = np.random.default_rng(5)
    return X[rng.integers(0, len(X), n)] * rng.uniform(0.95, 1.05, (n, 1))


@pytest.fixture(scope="module", params=["logistic", "narrow", "forest", "regression"])
def models(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Model], np.ndarray, str]:
    """The scikit-learn and the onnxruntime model of one bundle, its test rows and its kind."""
    work = tmp_path_factory.mktemp(request.param)
    bundle = make_bundle(work / request.param, request.param)
    X = np.load(work / f"{request.param}-test_X.npy")
    assert add_onnx(bundle, X).ok
    return [load_model(bundle), OnnxModel(load_bundle(bundle))], X, request.param


# 2 x SLICE_ROWS - 1 rows stay whole; 70,001 rows make 2, 3 and 4 uneven slices.
@pytest.mark.parametrize("rows", [2 * SLICE_ROWS - 1, 70_001])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_a_matrix_predicted_in_slices_is_the_matrix_predicted_whole(
    models: tuple[list[Model], np.ndarray, str], rows: int, threads: int
) -> None:
    X = _rows(models[1], rows)
    slices = RowSlices(threads)
    try:
        for model in models[0]:
            whole = model.predict(X)
            sliced = sliced_predict(model.predict, slices)(X)
            assert (sliced.probabilities is None) == (whole.probabilities is None)
            if model.runtime == "onnx":
                np.testing.assert_array_equal(sliced.labels, whole.labels, strict=True)
                if whole.probabilities is not None:
                    np.testing.assert_array_equal(sliced.probabilities, whole.probabilities)
                continue
            # scikit-learn's matmul (BLAS) may round a row's last bit differently by where the
            # row falls in a block, as it already does by a micro-batch's other rows
            if whole.probabilities is None:
                np.testing.assert_allclose(sliced.labels, whole.labels, rtol=1e-12)
            else:
                assert sliced.probabilities is not None
                np.testing.assert_array_equal(sliced.labels, whole.labels, strict=True)
                np.testing.assert_allclose(sliced.probabilities, whole.probabilities, rtol=1e-12)
    finally:
        slices.close()


def test_slices_run_at_once_on_their_threads() -> None:
    """Each slice runs on its own thread while the others run: the calling thread's slice
    waits (bounded) for the pool thread's to start."""
    started = threading.Barrier(2, timeout=30)
    seen: list[str] = []

    def predict(X: np.ndarray) -> Prediction:
        seen.append(threading.current_thread().name)
        started.wait()  # breaks (and fails the test) unless both slices run at once
        return Prediction(labels=X[:, 0].copy(), probabilities=None)

    slices = RowSlices(2)
    try:
        X = np.arange(2 * SLICE_ROWS, dtype=np.float64).reshape(-1, 1)
        out = sliced_predict(predict, slices)(X)
    finally:
        slices.close()
    np.testing.assert_array_equal(out.labels, X[:, 0])
    assert sorted(name.startswith("mlship-slice") for name in seen) == [False, True]


@pytest.mark.parametrize("runtime", [0, 1], ids=["sklearn", "onnx"])
def test_a_failing_slice_is_worded_for_the_whole_matrix(
    models: tuple[list[Model], np.ndarray, str], runtime: int
) -> None:
    """A row that overflows inside the model, in the second slice, gets the error the whole
    matrix gets (onnxruntime's names the row by its number in the request, not in its slice).
    Models that score such a row anyway (a forest) get the same answer both ways."""
    model = models[0][runtime]
    X = _rows(models[1], 2 * SLICE_ROWS)
    bad = SLICE_ROWS + 7
    X[bad] = np.where(np.arange(X.shape[1]) % 2 == 0, 1e308, -1e308)
    slices = RowSlices(2)
    try:
        try:
            whole = model.predict(X)
        except InvalidInput as e:
            with pytest.raises(InvalidInput) as sliced:
                sliced_predict(model.predict, slices)(X)
            assert str(sliced.value) == str(e)
            if runtime == 1:
                assert f"(row {bad}:" in str(e)
        else:
            assert models[2] != "logistic"  # the 30-feature logistic model overflows
            np.testing.assert_array_equal(
                sliced_predict(model.predict, slices)(X).labels, whole.labels
            )
    finally:
        slices.close()


def test_one_thread_or_a_small_matrix_is_never_sliced() -> None:
    assert RowSlices(1).sizes(10 * SLICE_ROWS) == [10 * SLICE_ROWS]
    slices = RowSlices(4)
    try:
        assert slices.sizes(2 * SLICE_ROWS - 1) == [2 * SLICE_ROWS - 1]
        assert slices.sizes(3 * SLICE_ROWS) == [SLICE_ROWS] * 3
        assert sum(slices.sizes(70_001)) == 70_001
    finally:
        slices.close()


def test_more_slices_than_threads_are_dealt_out_in_turn_and_come_back_in_order() -> None:
    slices = RowSlices(2)
    try:
        assert slices.sizes(6 * SLICE_ROWS, per_thread=3) == [SLICE_ROWS] * 6
        assert len(slices.sizes(6 * SLICE_ROWS - 1, per_thread=3)) == 5  # each >= SLICE_ROWS
        ran: dict[int, str] = {}

        def tenfold(k: int) -> int:
            ran[k] = threading.current_thread().name
            return 10 * k

        assert slices.map(tenfold, list(range(7))) == [0, 10, 20, 30, 40, 50, 60]
        on_caller = sorted(k for k, name in ran.items() if not name.startswith("mlship-slice"))
        assert on_caller == [0, 2, 4, 6]  # the pool thread took 1, 3 and 5
    finally:
        slices.close()


def test_joined_predictions_are_the_split_prediction() -> None:
    rng = np.random.default_rng(1)
    for probabilities in (rng.dirichlet([1, 1, 1], 10), None):
        prediction = Prediction(labels=np.arange(10), probabilities=probabilities)
        joined = join_predictions(split_prediction(prediction, [3, 0, 7]))
        np.testing.assert_array_equal(joined.labels, prediction.labels)
        if probabilities is None:
            assert joined.probabilities is None
        else:
            np.testing.assert_array_equal(joined.probabilities, probabilities)


def test_row_slices_refuse_fewer_than_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RowSlices(0)


@pytest.mark.parametrize(("cpus", "workers", "threads"), [(2, 2, 1), (2, 1, 2), (8, 3, 2)])
def test_a_worker_sizes_its_native_pools_to_its_threads(
    make_client: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    cpus: int,
    workers: int,
    threads: int,
) -> None:
    """pyarrow's pool (the CSV and JSON Lines readers) gets the worker's threads, not a thread
    per CPU in every worker, and BLAS and OpenMP one thread: a large request's slices are
    the worker's parallel predictions (``app.slices.set_native_threads``)."""
    monkeypatch.setattr("app.slices.cpus_available", lambda: cpus)
    pa.set_cpu_count(5)  # whatever the service finds, it sets its own
    make_client(workers=workers)
    assert pa.cpu_count() == threads
    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and set(blas) == {1}  # scikit-learn's OpenBLAS, loaded


def test_predictions_run_on_one_openmp_thread_wherever_they_run(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, logistic_X: np.ndarray
) -> None:
    """OpenMP keeps its limit per thread: a large request's two slices, each on its own
    thread, predict with one OpenMP thread each (``app.slices.on_one_openmp_thread``)."""
    monkeypatch.setattr("app.slices.cpus_available", lambda: 2)
    seen: list[tuple[str, list[int]]] = []
    real = Model.predict

    def recording(self: Model, X: np.ndarray) -> Prediction:
        pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
        seen.append((threading.current_thread().name, pools))
        return real(self, X)

    monkeypatch.setattr(Model, "predict", recording)
    client = make_client(
        workers=1, runtime="sklearn", cache_enabled=False, max_body_bytes=32 * 1024 * 1024
    )
    X = _rows(logistic_X, 2 * SLICE_ROWS)
    buffer = io.BytesIO()
    np.save(buffer, X)
    response = client.post(
        "/invocations",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
    assert len({name for name, _ in seen}) == 2  # sliced: two threads predicted
    assert all(pools == [1] for _, pools in seen), seen  # scikit-learn's libgomp, limited
