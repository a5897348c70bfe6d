"""A challenger beside the champion: loading, routing by the flags document, shadow, metrics.

Every test runs the real service (``TestClient(create_app(...))``) on real bundles: the
logistic champion and the random-forest challenger share the breast-cancer schema.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.main import create_app
from app.predictor import Predictor
from app.settings import AppSettings
from core.errors import ModelLoadError
from core.model import Prediction, load_model
from tests.app.conftest import ClientFactory
from tests.app.test_metrics import _value
from tests.factories import make_bundle

CHAMPION = "test-logistic-0"
CHALLENGER = "test-forest-0"


def write_flags(path: Path, **document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return tmp_path / "flags.json"


@pytest.fixture
def ab_client(
    make_client: ClientFactory, forest_bundle: Path, flags: Path
) -> Callable[..., TestClient]:
    def factory(**document: Any) -> TestClient:
        write_flags(flags, **document)
        return make_client(
            challenger_uri=str(forest_bundle), flags_uri=str(flags), flags_refresh_seconds=0.05
        )

    return factory


def _predict(client: TestClient, row: list[float], user: str | None = None) -> tuple[str, Any]:
    headers = {"X-User-ID": user} if user is not None else {}
    r = client.post("/v1/predict", json={"instances": [row]}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-model-version"] == r.json()["model_version"]
    return r.headers["x-model-version"], r.json()


def _count(client: TestClient, metric: str, **labels: str) -> float:
    """A sample of /metrics, 0 while the series does not exist yet."""
    try:
        return _value(client.get("/metrics").text, metric, **labels)
    except AssertionError:
        return 0.0


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition the service reaches on its own (bounded; no duration is asserted)."""
    for _ in range(400):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


# -- two models, one service ---------------------------------------------------------------


def test_challenger_incompatible_schema_refused_at_start_with_differences(
    logistic_bundle: Path, regression_bundle: Path
) -> None:
    settings = AppSettings(model_uri=str(logistic_bundle), challenger_uri=str(regression_bundle))
    with pytest.raises(ModelLoadError) as e, TestClient(create_app(settings)):
        pass
    message = str(e.value)
    assert f"MLSHIP_CHALLENGER_URI={regression_bundle} does not take the champion's" in message
    assert "task: champion classification, challenger regression" in message
    assert "missing in challenger: mean_radius" in message
    assert "classes: champion [0, 1], challenger None" in message


def test_challenger_other_categories_refused(tmp_path: Path, logistic_bundle: Path) -> None:
    from core.compatibility import schema_differences

    champion = load_model(logistic_bundle, estimator=False).manifest
    features = list(champion.features)
    features[0] = features[0].model_copy(update={"dtype": "int64"})
    other = champion.model_copy(update={"features": features})
    assert schema_differences(champion, other) == ["feature mean_radius: type float64 vs int64"]
    assert schema_differences(champion, champion) == []


def test_challenger_with_the_champions_version_refused(logistic_bundle: Path) -> None:
    settings = AppSettings(model_uri=str(logistic_bundle), challenger_uri=str(logistic_bundle))
    with (
        pytest.raises(ModelLoadError, match="has the champion's version 'test-logistic-0'"),
        TestClient(create_app(settings)),
    ):
        pass


def test_flags_without_challenger_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MLSHIP_FLAGS_URI is set but MLSHIP_CHALLENGER_URI"):
        AppSettings(flags_uri=str(tmp_path / "flags.json"))


def test_every_prediction_route_names_the_answering_version(
    make_client: ClientFactory, X: np.ndarray
) -> None:
    client = make_client()
    assert client.app.state.service.rollout is None  # type: ignore[attr-defined]
    rows = X[:3].tolist()
    answers = [
        client.post("/v1/predict", json={"instances": rows}),
        client.post("/invocations", json={"instances": rows}),
        client.post(
            "/invocations", content="\n".join(",".join(map(str, r)) for r in rows),
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        ),
        client.post(
            "/invocations", json={"instances": rows}, headers={"Accept": "application/jsonlines"}
        ),
        client.post(
            "/v2/models/mlship/infer",
            json={"inputs": [{"name": "input-0", "shape": [3, 30], "datatype": "FP64",
                              "data": rows}]},
        ),
    ]  # fmt: skip
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == CHAMPION
    for r in (answers[0], answers[1], answers[4]):
        assert r.json()["model_version"] == CHAMPION


# -- routing: flag, split, key, kill switch ------------------------------------------------


def test_flag_allow_and_deny_lists(
    ab_client: Callable[..., TestClient], X: np.ndarray, forest_bundle: Path
) -> None:
    client = ab_client(flags={"new_model": {"allow": ["alice"], "deny": ["bob"]}})
    forest = load_model(forest_bundle)
    for i in range(20):
        version, body = _predict(client, X[i].tolist(), "alice")
        assert version == CHALLENGER
        assert (
            body["probabilities"] == np.asarray(forest.predict(X[i : i + 1]).probabilities).tolist()
        )
        assert _predict(client, X[i].tolist(), "bob")[0] == CHAMPION
        assert _predict(client, X[i].tolist(), "carol")[0] == CHAMPION  # percent 0
        assert _predict(client, X[i].tolist())[0] == CHAMPION  # no key


def test_deny_wins_over_a_full_split(ab_client: Callable[..., TestClient], X: np.ndarray) -> None:
    client = ab_client(flags={"new_model": {"deny": ["bob"], "percent": 100}})
    assert _predict(client, X[0].tolist(), "bob")[0] == CHAMPION
    assert _predict(client, X[0].tolist(), "carol")[0] == CHALLENGER
    assert _predict(client, X[0].tolist())[0] == CHALLENGER  # 100 %: keyless too


def test_split_is_sticky_per_key(ab_client: Callable[..., TestClient], X: np.ndarray) -> None:
    client = ab_client(flags={"new_model": {"percent": 50}})
    seen: dict[str, set[str]] = {}
    for i in range(1000):
        user = f"user-{i % 40}"
        seen.setdefault(user, set()).add(_predict(client, X[i % len(X)].tolist(), user)[0])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {v for versions in seen.values() for v in versions} == {CHAMPION, CHALLENGER}
    text = client.get("/metrics").text
    served = [
        _value(text, "mlship_model_requests_total", model_version=v, mode="served")
        for v in (CHAMPION, CHALLENGER)
    ]
    assert sum(served) == 1000
    from prometheus_client.parser import text_string_to_metric_families

    rows = {
        (sample.labels["model_version"], sample.labels["class"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlship_model_predictions_total"
    }
    assert sum(rows.values()) == 1000  # one row per request, counted once, by the model it hit
    for version, n in zip((CHAMPION, CHALLENGER), served, strict=True):
        assert sum(v for (ver, _), v in rows.items() if ver == version) == n


@pytest.mark.parametrize("percent", [1, 10, 30, 50, 90])
def test_split_weights_within_tolerance(percent: float) -> None:
    from core.flags import FeatureFlags

    policy = FeatureFlags.model_validate({"flags": {"new_model": {"percent": percent}}})
    n = 10_000
    hits = sum(policy.is_enabled("new_model", f"customer-{i}") for i in range(n))
    p = percent / 100
    # 4.5 standard deviations of a binomial(n, p): a correct hash fails about 1 run in 150,000.
    assert abs(hits - n * p) <= 4.5 * (n * p * (1 - p)) ** 0.5, hits


def test_seed_feature_flag_example() -> None:
    from core.flags import FeatureFlags

    feature_flag = FeatureFlags.model_validate(
        {"flags": {"new_model": {"allow": ["u1"], "deny": ["u2"], "percent": 0}}}
    )
    assert feature_flag.is_enabled("new_model", "u1")
    assert not feature_flag.is_enabled("new_model", "u2")
    assert not feature_flag.is_enabled("new_model", "u3")
    assert not feature_flag.is_enabled("other_flag", "u1")
    killed = feature_flag.model_copy(update={"kill_switch": True})
    assert not killed.is_enabled("new_model", "u1")


def test_routing_key_from_a_record_field(
    ab_client: Callable[..., TestClient], X: np.ndarray, feature_names: list[str]
) -> None:
    client = ab_client(
        routing_key={"field": feature_names[0]}, flags={"new_model": {"percent": 50}}
    )
    by_value: dict[float, set[str]] = {}
    for i in range(len(X)):
        row = X[i].tolist()
        by_value.setdefault(row[0], set()).add(_predict(client, row, "ignored")[0])
        other = [row[0], *X[(i + 1) % len(X)][1:].tolist()]  # same key, other features
        by_value[row[0]].add(_predict(client, other)[0])
    assert all(len(v) == 1 for v in by_value.values())
    assert {v for vs in by_value.values() for v in vs} == {CHAMPION, CHALLENGER}


def test_routing_key_field_must_be_a_feature(
    ab_client: Callable[..., TestClient], X: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mlship.app"):
        client = ab_client(routing_key={"field": "user"}, flags={"new_model": {"percent": 100}})
    assert _predict(client, X[0].tolist(), "u")[0] == CHAMPION
    assert "routing_key.field 'user' is not a feature of the model" in caplog.text


def test_kill_switch_and_refresh_without_restart(
    ab_client: Callable[..., TestClient], flags: Path, X: np.ndarray
) -> None:
    client = ab_client(flags={"new_model": {"percent": 100}})
    assert _predict(client, X[0].tolist(), "u")[0] == CHALLENGER
    write_flags(flags, kill_switch=True, flags={"new_model": {"percent": 100}})
    _until(lambda: _predict(client, X[0].tolist(), "u")[0] == CHAMPION, "kill switch in force")
    for user in ("u", "v", "w"):
        assert _predict(client, X[0].tolist(), user)[0] == CHAMPION
    assert _value(client.get("/metrics").text, "mlship_rollout_kill_switch") == 1
    write_flags(flags, flags={"new_model": {"allow": ["v"]}})
    _until(lambda: _predict(client, X[0].tolist(), "v")[0] == CHALLENGER, "kill switch off")
    assert _predict(client, X[0].tolist(), "u")[0] == CHAMPION


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"{not json", "not a JSON document"),
        (b'{"flags": {"new_model": {"percent": 150}}}', "flags.new_model.percent"),
        (b'{"kill_swich": true}', "kill_swich: Extra inputs are not permitted"),
        (b'{"flags": {"new_model": {"allow": ["a"], "deny": ["a"]}}}', "both allowed and denied"),
        (b"[]", "the document must be a mapping"),
    ],
)
def test_bad_policy_is_refused_and_the_last_good_one_stays(
    ab_client: Callable[..., TestClient],
    flags: Path,
    X: np.ndarray,
    caplog: pytest.LogCaptureFixture,
    document: bytes,
    problem: str,
) -> None:
    client = ab_client(flags={"new_model": {"allow": ["alice"]}})
    rollout = client.app.state.service.rollout  # type: ignore[attr-defined]
    flags.write_bytes(document)
    with caplog.at_level(logging.ERROR, logger="mlship.app"):
        assert rollout.refresh() is False
    assert "flags document refused, keeping the last good policy" in caplog.text
    assert problem in caplog.text
    assert _predict(client, X[0].tolist(), "alice")[0] == CHALLENGER
    assert _predict(client, X[0].tolist(), "carol")[0] == CHAMPION
    text = client.get("/metrics").text
    assert _value(text, "mlship_rollout_policy_loads_total", result="refused") >= 1


def test_unreachable_policy_keeps_the_last_good_one(
    ab_client: Callable[..., TestClient], flags: Path, X: np.ndarray
) -> None:
    client = ab_client(flags={"new_model": {"allow": ["alice"]}})
    flags.unlink()
    _until(
        lambda: _count(client, "mlship_rollout_policy_loads_total", result="unreachable") > 0,
        "an unreachable read",
    )
    assert _predict(client, X[0].tolist(), "alice")[0] == CHALLENGER


def test_flags_from_s3(aws: str, make_client: ClientFactory, forest_bundle: Path, X: Any) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="flags")
    s3.put_object(Bucket="flags", Key="p.json", Body=b'{"flags": {"new_model": {"percent": 100}}}')
    client = make_client(challenger_uri=str(forest_bundle), flags_uri="s3://flags/p.json")
    assert _predict(client, X[0].tolist(), "u")[0] == CHALLENGER
    rollout = client.app.state.service.rollout  # type: ignore[attr-defined]
    s3.put_object(Bucket="flags", Key="p.json", Body=b'{"kill_switch": true}')
    assert rollout.refresh() is True
    assert _predict(client, X[0].tolist(), "u")[0] == CHAMPION
    s3.delete_object(Bucket="flags", Key="p.json")
    assert rollout.refresh() is False
    assert rollout.policy.kill_switch


def test_v2_version_route_pins_the_challenger(
    ab_client: Callable[..., TestClient], X: np.ndarray
) -> None:
    client = ab_client()
    body = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": X[:1].tolist()}]}
    for version in (CHAMPION, CHALLENGER):
        r = client.post(f"/v2/models/mlship/versions/{version}/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == r.headers["x-model-version"] == version
    assert client.post("/v2/models/mlship/versions/nope/infer", json=body).status_code == 404


# -- shadow --------------------------------------------------------------------------------


class HeldPredictor:
    """The challenger's real predictor, held on an event the test controls."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    async def predict(self, X: np.ndarray) -> Prediction:
        self.started.set()
        released = await run_in_threadpool(self.release.wait, 30)
        assert released
        try:
            return await self.inner.predict(X)
        finally:
            self.finished.set()

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_shadow_never_on_the_response_path_and_agreement_counted(
    ab_client: Callable[..., TestClient], X: np.ndarray, forest_bundle: Path, logistic_bundle: Path
) -> None:
    client = ab_client(shadow={"percent": 100})
    challenger = client.app.state.service.rollout.challenger  # type: ignore[attr-defined]
    held = HeldPredictor(challenger.predictor)
    challenger.predictor = held

    r = client.post("/v1/predict", json={"instances": X[:50].tolist()})
    # The champion answered while the challenger is still blocked on the test's event.
    assert r.status_code == 200
    assert r.headers["x-model-version"] == CHAMPION
    assert held.started.wait(10)
    assert not held.finished.is_set()
    assert _value(client.get("/metrics").text, "mlship_shadow_compared_rows_total") == 0

    held.release.set()
    _until(
        lambda: _count(client, "mlship_shadow_compared_rows_total") == 50,
        "the shadow comparison",
    )
    champion = load_model(logistic_bundle).predict(X[:50]).labels
    forest = load_model(forest_bundle).predict(X[:50]).labels
    text = client.get("/metrics").text
    assert _value(text, "mlship_shadow_agreeing_rows_total") == int(np.sum(champion == forest))
    assert _value(text, "mlship_model_requests_total", model_version=CHALLENGER, mode="shadow") == 1
    assert _value(text, "mlship_model_requests_total", model_version=CHAMPION, mode="served") == 1
    assert (
        _value(text, "mlship_model_latency_seconds_count", model_version=CHALLENGER, mode="shadow")
        == 1
    )


def test_shadow_regression_absolute_difference(
    make_client: ClientFactory, regression_bundle: Path, tmp_path: Path, flags: Path
) -> None:
    other = make_bundle(tmp_path / "ridge-1", "regression", seed=1)
    X = np.load(regression_bundle.parent / f"{regression_bundle.name}-test_X.npy")[:40]
    client = make_client(
        regression_bundle,
        challenger_uri=str(other),
        flags_uri=str(write_flags(flags, shadow={"percent": 100})),
    )
    for row in X:
        assert _predict(client, row.tolist())[0] == "test-regression-0"
    _until(
        lambda: _count(client, "mlship_shadow_compared_rows_total") == 40,
        "the shadow comparisons",
    )
    expected = np.abs(
        load_model(other).predict(X).labels - load_model(regression_bundle).predict(X).labels
    ).sum()
    got = _value(client.get("/metrics").text, "mlship_shadow_abs_difference_total")
    assert got == pytest.approx(expected, rel=1e-9)
    assert got > 0


class FailingPredictor:
    async def predict(self, X: np.ndarray) -> Prediction:
        raise RuntimeError("challenger broke")

    async def aclose(self) -> None:
        return None


def test_shadow_challenger_errors_are_counted_never_returned(
    ab_client: Callable[..., TestClient], X: np.ndarray
) -> None:
    client = ab_client(shadow={"percent": 100})
    client.app.state.service.rollout.challenger.predictor = FailingPredictor()  # type: ignore[attr-defined]
    for i in range(5):
        assert _predict(client, X[i].tolist())[0] == CHAMPION
    _until(
        lambda: _count(
            client, "mlship_model_errors_total", model_version=CHALLENGER, mode="shadow"
        ) == 5,
        "five shadow errors",
    )  # fmt: skip


def test_shadow_bounded_in_flight(
    make_client: ClientFactory, forest_bundle: Path, flags: Path, X: np.ndarray
) -> None:
    client = make_client(
        challenger_uri=str(forest_bundle),
        flags_uri=str(write_flags(flags, shadow={"percent": 100})),
        shadow_max_in_flight=1,
    )
    challenger = client.app.state.service.rollout.challenger  # type: ignore[attr-defined]
    held = HeldPredictor(challenger.predictor)
    challenger.predictor = held
    for i in range(3):
        assert _predict(client, X[i].tolist())[0] == CHAMPION
    assert _value(client.get("/metrics").text, "mlship_shadow_skipped_total") == 2
    held.release.set()
    _until(
        lambda: _count(client, "mlship_shadow_compared_rows_total") == 1,
        "the one shadow comparison",
    )


def test_serve_with_workers_refuses_a_bad_challenger_before_starting_them(
    logistic_bundle: Path, regression_bundle: Path
) -> None:
    import os
    import subprocess
    import sys

    from tests.factories import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSHIP_")}
    env |= {
        "MLSHIP_WORKERS": "2",
        "MLSHIP_HOST": "127.0.0.1",
        "MLSHIP_PORT": str(free_port()),
        "MLSHIP_CHALLENGER_URI": str(regression_bundle),
    }
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--model", str(logistic_bundle)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "does not take the champion's requests: task: champion classification" in done.stderr
    assert "Application startup" not in done.stderr  # no worker was started
