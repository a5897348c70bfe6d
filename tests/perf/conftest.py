"""Fixtures for the performance-path tests: real bundles and their held-out rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.model import Model, load_model


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
