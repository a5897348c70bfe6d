"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import make_bundle

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


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
