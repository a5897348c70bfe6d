"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from threadpoolctl import ThreadpoolController

from core.model import Model, load_model
from tests.factories import flags_table, make_bundle, running_moto, train_table

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


_ARROW_THREADS = pa.cpu_count()  # this machine's default, before any service
# The BLAS and OpenMP libraries scikit-learn loaded (tests.factories imports it): found once,
# as a fresh controller looks for them again (2.3 ms a test, against 0.01).
_NATIVE_POOLS = ThreadpoolController()


@pytest.fixture(autouse=True)
def _native_pools_restored() -> Iterator[None]:
    """A started service sizes the process-wide pools of pyarrow, BLAS and OpenMP
    (``app.slices.set_native_threads``), a module's shared service too: every test starts
    from pyarrow's default, and BLAS and OpenMP get back the sizes they had before it."""
    pa.set_cpu_count(_ARROW_THREADS)
    with _NATIVE_POOLS.limit(limits=None):  # restores the BLAS and OpenMP sizes on exit
        yield
    pa.set_cpu_count(_ARROW_THREADS)


@pytest.fixture(scope="session")
def logistic_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic-regression bundle on the breast-cancer data (built once per session)."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "logistic", "logistic")


@pytest.fixture(scope="session")
def forest_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100-tree random-forest bundle on the breast-cancer data."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "forest", "forest")


@pytest.fixture(scope="session")
def regression_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ridge-regression bundle on the diabetes data."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "regression", "regression")


def _test_split(bundle: Path) -> np.ndarray:
    return np.asarray(np.load(bundle.parent / f"{bundle.name}-test_X.npy"), dtype=np.float64)


@pytest.fixture(scope="session")
def logistic_model(logistic_bundle: Path) -> Model:
    return load_model(logistic_bundle)


@pytest.fixture(scope="session")
def forest_model(forest_bundle: Path) -> Model:
    return load_model(forest_bundle)


@pytest.fixture(scope="session")
def regression_model(regression_bundle: Path) -> Model:
    return load_model(regression_bundle)


@pytest.fixture(scope="session")
def logistic_X(logistic_bundle: Path) -> np.ndarray:
    return _test_split(logistic_bundle)


@pytest.fixture(scope="session")
def forest_X(forest_bundle: Path) -> np.ndarray:
    return _test_split(forest_bundle)


@pytest.fixture(scope="session")
def regression_X(regression_bundle: Path) -> np.ndarray:
    return _test_split(regression_bundle)


@pytest.fixture(scope="session")
def penguins() -> pd.DataFrame:
    """The Palmer penguins table (text features and label, gaps), shipped in its package."""
    from palmerpenguins import load_penguins

    frame: pd.DataFrame = load_penguins()
    return frame


@pytest.fixture(scope="session")
def flags_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of :func:`tests.factories.flags_table`: True/False feature and target."""
    tmp = tmp_path_factory.mktemp("flags")
    return train_table(tmp, flags_table(), "churned", "logistic_regression")


@pytest.fixture(scope="session")
def penguin_bundle(penguins: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("penguins")
    return train_table(tmp, penguins, "species", "logistic_regression")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (HTTP), for boto3 code under test; yields its URL.

    Use it through ``aws``, which resets its state for every test.
    """
    with running_moto() as url:
        yield url


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every boto3 client at a freshly reset moto server with dummy credentials."""
    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server
