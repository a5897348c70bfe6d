"""`mlship smoke --evidence`: promotion on the shadow comparison, against the real service.

The service runs as `mlship serve` on 127.0.0.1 with two workers (their metrics are summed),
the logistic champion and the random-forest challenger shadowing every request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cli.main import main as mlship
from core.flags import Thresholds
from core.model import load_model
from pipelines.release.evidence import Evidence, check_evidence, read_evidence
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shadowed(
    logistic_bundle: Path, forest_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    flags = tmp_path_factory.mktemp("flags") / "flags.json"
    flags.write_text(json.dumps({"shadow": {"percent": 100}}))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLSHIP_")},
        "MLSHIP_WORKERS": "2",
        "MLSHIP_HOST": "127.0.0.1",
        "MLSHIP_PORT": str(port),
        "MLSHIP_LOG_LEVEL": "WARNING",
        "MLSHIP_CHALLENGER_URI": str(forest_bundle),
        "MLSHIP_FLAGS_URI": str(flags),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--model", str(logistic_bundle)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"mlship serve exited with {proc.returncode}: {stderr}")
            time.sleep(0.2)
        else:
            raise RuntimeError("mlship serve did not answer /ping")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_smoke_evidence_passes_and_reads_the_true_agreement(
    shadowed: str,
    logistic_bundle: Path,
    forest_bundle: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = mlship(
        ["smoke", "--url", shadowed, "--bundle", str(logistic_bundle), "--requests", "100",
         "--max-p99-ms", "5000", "--evidence", "--min-agreement", "0.5",
         "--min-compared-rows", "50", "--max-challenger-error-rate", "0"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "evidence: champion test-logistic-0 vs challenger test-forest-0" in out
    assert out.rstrip().endswith("smoke: evidence PASS")

    # Every request was shadowed: once the last comparisons land, the figures are exact.
    golden = np.asarray(load_model(logistic_bundle).bundle.golden.inputs, dtype=np.float64)
    agree = load_model(logistic_bundle).predict(golden).labels == (
        load_model(forest_bundle).predict(golden).labels
    )
    # The golden request (20 rows) then 100 single rows cycling through the golden rows.
    expected_rows = 20 + 100
    expected_agreeing = int(agree.sum()) + sum(int(agree[i % 20]) for i in range(100))
    ev = Evidence()
    for _ in range(200):
        ev = read_evidence(_metrics(shadowed))
        if ev.compared_rows >= expected_rows:
            break
        time.sleep(0.05)
    assert ev.compared_rows == expected_rows
    assert ev.agreeing_rows == expected_agreeing
    assert ev.requests["challenger"] == 101  # summed over both workers
    assert ev.errors["challenger"] == 0


def test_smoke_evidence_refuses_promotion_below_the_flags_thresholds(
    shadowed: str,
    logistic_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = tmp_path / "gate.json"
    flags.write_text(json.dumps({"thresholds": {"min_compared_rows": 1_000_000}}))
    code = mlship(
        ["smoke", "--url", shadowed, "--bundle", str(logistic_bundle), "--requests", "0",
         "--evidence", "--flags", str(flags), "--min-agreement", "0.5"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 4
    assert "Promotion refused for challenger test-forest-0" in err
    assert "rows compared (at least 1000000 needed" in err


def test_smoke_evidence_needs_a_url(
    logistic_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mlship(
        ["smoke", "--endpoint", "ep", "--bundle", str(logistic_bundle), "--evidence"]
    )  # fmt: skip
    assert code == 1
    assert "--evidence reads the service's /metrics: give --url" in capsys.readouterr().err


def _evidence(**fields: float) -> Evidence:
    ev = Evidence(versions={"champion": "a", "challenger": "b"})
    ev.requests["challenger"] = fields.get("requests", 100)
    ev.errors["challenger"] = fields.get("errors", 0)
    ev.latency_sum["champion"], ev.latency_count["champion"] = 0.1, 100  # 1 ms mean
    ev.latency_sum["challenger"] = fields.get("challenger_latency_s", 0.2)
    ev.latency_count["challenger"] = 100
    ev.compared_rows = fields.get("compared", 1000)
    ev.agreeing_rows = fields.get("agreeing", 990)
    return ev


@pytest.mark.parametrize(
    ("fields", "thresholds", "problem"),
    [
        ({"agreeing": 900}, {"min_agreement": 0.95}, "agreement 90.00% is below 95.00%"),
        ({"errors": 5}, {"max_error_rate": 0.01}, "challenger error rate 5.00% is above 1.00%"),
        (
            {"challenger_latency_s": 1.1},
            {"max_latency_delta_ms": 5},
            "challenger mean latency 11.00 ms is 10.00 ms above the champion's 1.00 ms",
        ),
        ({"compared": 10, "agreeing": 10}, {"min_agreement": 0.5}, "only 10 rows compared"),
    ],
)
def test_check_evidence_names_each_missed_threshold(
    fields: dict[str, float], thresholds: dict[str, float], problem: str
) -> None:
    t = Thresholds.model_validate(thresholds)
    assert [p for p in check_evidence(_evidence(**fields), t) if problem in p]
    assert check_evidence(_evidence(), t) == []


def test_read_evidence_without_a_challenger_is_refused() -> None:
    from core.errors import MlshipError

    with pytest.raises(MlshipError, match="it runs no challenger"):
        read_evidence("# HELP x y\n# TYPE x counter\nx_total 1.0\n")
