"""Fixtures for the app tests: settings, clients on real bundles, the held-out rows."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import AppSettings

API_KEY = "test-key-0123456789"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()

ClientFactory = Callable[..., TestClient]


def test_split(bundle: Path) -> np.ndarray:
    """The held-out rows written beside a bundle by ``tests.factories.make_bundle``."""
    return np.asarray(np.load(bundle.parent / f"{bundle.name}-test_X.npy"), dtype=np.float64)


test_split.__test__ = False  # type: ignore[attr-defined]  # not a test despite the name


def on_event_loop() -> bool:
    """Whether the calling thread runs an asyncio event loop (a model or a parse called on
    the server's loop, not in a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Held:
    """``fn`` that, once called, waits for ``release`` before it runs (at most ``wait_s``: on
    the event loop nothing can release it in that time), and records for each call whether
    it ran on the event loop and whether it was released."""

    def __init__(self, fn: Callable[..., Any], wait_s: float = 10.0) -> None:
        self.fn = fn
        self.wait_s = wait_s
        self.started = threading.Event()
        self.release = threading.Event()
        self.on_loop: list[bool] = []
        self.released: list[bool] = []

    def __call__(self, *args: Any) -> Any:
        self.on_loop.append(on_event_loop())
        self.started.set()
        self.released.append(self.release.wait(self.wait_s))
        return self.fn(*args)


@pytest.fixture(autouse=True)
def _no_mlship_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test passes (no MLSHIP_* leaking in)."""
    import os

    for name in list(os.environ):
        if name.startswith(("MLSHIP_", "SAGEMAKER_")):
            monkeypatch.delenv(name)


@pytest.fixture
def make_client(logistic_bundle: Path) -> Iterator[ClientFactory]:
    """Build started clients (lifespan run) with settings overrides; closed after the test."""
    opened: list[TestClient] = []

    def factory(bundle: Path | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("model_uri", str(bundle or logistic_bundle))
        settings = AppSettings(**overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(logistic_bundle: Path) -> Iterator[TestClient]:
    """A started client on the logistic bundle, no API keys (shared by a module)."""
    settings = AppSettings(model_uri=str(logistic_bundle))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def X(logistic_bundle: Path) -> np.ndarray:
    return test_split(logistic_bundle)


@pytest.fixture(scope="module")
def feature_names(client: TestClient) -> list[str]:
    names: list[str] = client.app.state.service.model.feature_names  # type: ignore[attr-defined]
    return names
