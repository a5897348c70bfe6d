"""Builders shared by the test suites: small real models written as real bundles."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.bundle import write_bundle
from core.manifest import Golden, ManifestDraft, TargetSpec
from pipelines.profile import describe_features

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["logistic", "forest", "regression", "narrow"]


def make_bundle(out_dir: Path, kind: Kind = "logistic", seed: int = 0) -> Path:
    """Fit a small real model on scikit-learn's bundled data and write it as a bundle.

    ``narrow`` is the logistic model on the first 5 breast-cancer features.

    Returns the bundle directory; the held-out split is stored as ``test_X.npy`` beside it
    (outside the bundle) for tests that compare predictions on the whole test split.
    """
    if kind == "regression":
        data = load_diabetes(as_frame=False)
        estimator: object = Ridge(alpha=1.0)
    else:
        data = load_breast_cancer(as_frame=False)
        estimator = (
            LogisticRegression(max_iter=1000)
            if kind in ("logistic", "narrow")
            else RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        )
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target)
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    if kind == "narrow":  # 5 features: short CSV lines, many rows per megabyte
        X, names = X[:, :5], names[:5]
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    model = Pipeline([("scale", StandardScaler()), ("model", estimator)]).fit(X_train, y_train)
    features, reference = describe_features(X_train, names)
    is_classifier = kind != "regression"
    golden_X = X_test[:20]
    golden = Golden(
        inputs=golden_X.tolist(),
        predictions=model.predict(golden_X).tolist(),
        probabilities=model.predict_proba(golden_X).tolist() if is_classifier else None,
    )
    manifest = ManifestDraft(
        name="mlship",
        version=f"test-{kind}-{seed}",
        created_at=datetime.now(UTC).isoformat(),
        git_commit=None,
        dataset_sha256=hashlib.sha256(X.tobytes()).hexdigest(),
        task="classification" if is_classifier else "regression",
        params={"model": kind, "seed": seed},
        metrics={},
        features=features,
        target=TargetSpec(name="target", classes=np.unique(y).tolist() if is_classifier else None),
        reference=reference,
    )
    bundle = write_bundle(out_dir, model, manifest, golden)
    np.save(out_dir.parent / f"{out_dir.name}-test_X.npy", X_test)
    return bundle


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_moto(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run a real moto server on 127.0.0.1 (HTTP) until the block ends; yields its URL.

    Args:
        env: Extra environment for the server (``INITIAL_NO_AUTH_ACTION_COUNT=0`` makes it
            enforce IAM authentication).
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start within 30 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def flags_table(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """A customer table of the kind real exports are: a True/False column, a small count, an
    amount that is zero for most rows, a text column, and a True/False target (``churned``)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    premium = rng.random(rows) < 0.3
    seats = rng.integers(1, 5, rows)
    spend = np.where(rng.random(rows) < 0.6, 0.0, np.round(rng.exponential(40.0, rows), 2))
    plan = rng.choice(["basic", "pro", "team"], rows)
    score = 0.03 * spend - 1.5 * premium - 0.4 * seats + (plan == "basic") + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {"premium": premium, "seats": seats, "spend": spend, "plan": plan, "churned": score > 0}
    )


def train_table(
    tmp: Path,
    frame: pd.DataFrame,
    target: str,
    model: str,
    parquet: bool = False,
    say: Callable[[str], None] | None = None,
    **extra: Any,
) -> Path:
    """Train ``model`` on ``frame`` (written as CSV, or Parquet) with `mlship train`'s own
    code, the gate and the registry off; the bundle directory. ``say`` gets training's lines;
    ``extra`` adds params.yaml keys (``data`` merges into the data section)."""
    import yaml

    from pipelines.params import load_params
    from pipelines.train import train

    data = tmp / ("data.parquet" if parquet else "data.csv")
    if parquet:
        frame.to_parquet(data, index=False)
    else:
        frame.to_csv(data, index=False)
    raw = {
        "name": f"test-{target}",
        "data": {"path": str(data), "target": target, "builtin": None, "expectations": None,
                 **extra.pop("data", {})},
        "model": {"type": model, "hyperparameters": {}},
        "gate": {"thresholds": {}},
        "output": {"dir": str(tmp / "bundle"), "metrics": None, "onnx": True},
        "registry": {"enabled": False},
        **extra,
    }  # fmt: skip
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    bundle: Path = train(load_params(tmp / "params.yaml"), say=say or (lambda _: None)).bundle_dir
    return bundle
