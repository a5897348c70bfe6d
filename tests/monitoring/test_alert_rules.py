"""Prometheus alert rules on the service's metrics: valid, unit-tested, and naming real metrics."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import AppSettings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: `make system-tools` installs it (Debian).")
        pytest.skip("promtool not installed; run `make system-tools`")
    return path


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_alert_rules_fire_as_their_unit_tests_expect(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_name_only_metrics_the_service_exposes(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    referenced = set(re.findall(r"\bmlship_[a-z_]+\b", RULES.read_text()))
    X = np.load(logistic_bundle.parent / f"{logistic_bundle.name}-test_X.npy")
    settings = AppSettings(model_uri=str(logistic_bundle), capture_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/predict", json={"features": X[:200].tolist()}).status_code == 200
        assert client.post("/v1/predict", json={"features": [1.0]}).status_code == 422
        exposition = client.get("/metrics").text
    exposed = {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    missing = sorted(referenced - exposed)
    assert referenced, "the rules reference no mlship metric"
    assert not missing, f"rules reference metrics the service does not expose: {missing}"
