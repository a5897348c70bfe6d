"""The model-signal lines: what each round covers (ratios over the rows since the previous round,
the PSI of the monitor's window), nothing for an interval without traffic, never a crash, and
the last interval written at shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import AppSettings
from app.signals import SignalWriter, Snapshot, interval_lines
from core.bundle import read_manifest
from core.drift import ReferenceBins
from tests.app.conftest import test_split
from tests.monitoring.direct import direct_quality

FEATURES = ["a", "b"]
CLASSES = ["0", "1", "2"]


def snap(
    rows: float,
    missing: tuple[float, float] = (0, 0),
    outside: tuple[float, float] = (0, 0),
    psi: tuple[float, float] = (math.nan, math.nan),
    predictions: dict[tuple[str, str], float] | None = None,
) -> Snapshot:
    return Snapshot(
        rows, np.array(missing, float), np.array(outside, float), np.array(psi), predictions or {}
    )


def by_key(lines: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """{(signal, feature or class, model_version): value}, each key once."""
    out: dict[tuple[str, str, str], float] = {}
    for line in lines:
        dimension = line["feature"] if "feature" in line else line["class"]
        key = (str(line["signal"]), str(dimension), str(line["model_version"]))
        assert key not in out, f"{key} twice in one round"
        out[key] = float(line["value"])
    return out


def test_signals_ratios_cover_the_rows_since_the_previous_round() -> None:
    start = snap(0)
    first = snap(
        10,
        missing=(2, 0),
        outside=(0, 5),
        psi=(0.3, math.nan),
        predictions={("v7", "0"): 6, ("v7", "1"): 4, ("v7", "2"): 0},
    )
    second = snap(
        15,
        missing=(2, 1),
        outside=(0, 5),
        psi=(0.25, 0.01),
        predictions={("v7", "0"): 6, ("v7", "1"): 5, ("v7", "2"): 4},
    )

    assert by_key(interval_lines(start, first, FEATURES, CLASSES, "v7")) == {
        ("feature_psi", "a", "v7"): 0.3,  # b has no PSI yet (NaN): no line
        ("missing_ratio", "a", "v7"): 0.2,
        ("missing_ratio", "b", "v7"): 0.0,
        ("out_of_range_ratio", "a", "v7"): 0.0,
        ("out_of_range_ratio", "b", "v7"): 0.5,
        ("class_share", "0", "v7"): 0.6,
        ("class_share", "1", "v7"): 0.4,
        ("class_share", "2", "v7"): 0.0,
    }
    # The next round: the 5 rows since, not the 15 since the start; the PSI is the window's.
    assert by_key(interval_lines(first, second, FEATURES, CLASSES, "v7")) == {
        ("feature_psi", "a", "v7"): 0.25,
        ("feature_psi", "b", "v7"): 0.01,
        ("missing_ratio", "a", "v7"): 0.0,
        ("missing_ratio", "b", "v7"): 0.2,
        ("out_of_range_ratio", "a", "v7"): 0.0,
        ("out_of_range_ratio", "b", "v7"): 0.0,
        ("class_share", "0", "v7"): 0.0,
        ("class_share", "1", "v7"): 0.2,
        ("class_share", "2", "v7"): 0.8,
    }


def test_signals_an_interval_without_traffic_writes_nothing() -> None:
    quiet = snap(10, missing=(2, 0), psi=(0.3, 0.2), predictions={("v7", "0"): 6, ("v7", "1"): 4})
    assert interval_lines(quiet, quiet, FEATURES, CLASSES, "v7") == []
    assert interval_lines(snap(0), snap(0), FEATURES, CLASSES, "v7") == []


def test_signals_class_shares_per_answering_version_and_none_for_a_regressor() -> None:
    before = snap(0, predictions={("champ", "0"): 3, ("chall", "0"): 1})
    after = snap(
        8,
        predictions={("champ", "0"): 3, ("chall", "0"): 3, ("chall", "1"): 6},
    )
    shares = {
        k: v
        for k, v in by_key(interval_lines(before, after, FEATURES, CLASSES, "champ")).items()
        if k[0] == "class_share"
    }
    # Only the challenger answered in this interval: the champion has no shares this round.
    assert shares == {
        ("class_share", "0", "chall"): 0.25,
        ("class_share", "1", "chall"): 0.75,
        ("class_share", "2", "chall"): 0.0,
    }
    regressor = interval_lines(snap(0), snap(4, predictions={("v", "value"): 4}), FEATURES, [], "v")
    assert {line["signal"] for line in regressor} == {"missing_ratio", "out_of_range_ratio"}


def test_signals_counters_that_went_down_never_give_values_outside_the_contract() -> None:
    """A worker's state that restarted (a recycled pid with another layout) lowers a total."""
    before = snap(10, missing=(5, 0), predictions={("v", "0"): 9, ("v", "1"): 1})
    after = snap(12, missing=(1, 0), predictions={("v", "0"): 2, ("v", "1"): 3})
    lines = by_key(interval_lines(before, after, FEATURES, CLASSES, "v"))
    assert lines[("missing_ratio", "a", "v")] == 0.0
    assert lines[("class_share", "1", "v")] == 1.0
    assert all(0 <= v <= 1 for v in lines.values())
    assert interval_lines(after, snap(3), FEATURES, CLASSES, "v") == []


class Figures:
    """A stand-in for the service's figures: rows added by the test, reads that can fail."""

    def __init__(self) -> None:
        self.rows = 0.0
        self.fail = False

    def read(self) -> Snapshot:
        if self.fail:
            raise OSError("metrics directory gone")
        return snap(self.rows, missing=(self.rows / 2, 0), predictions={("v", "0"): self.rows})


def test_signal_writer_writes_one_json_line_per_figure_and_survives_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures = Figures()
    out: list[bytes] = []
    writer = SignalWriter(figures.read, FEATURES, ["0", "1"], "v", 60.0, out.append)

    assert writer.write_round() == 0  # nothing since the baseline read at construction
    figures.rows = 4
    assert writer.write_round() == 6  # 2 missing + 2 out-of-range ratios + 2 class shares
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in out)
    first = [json.loads(line) for line in out]
    assert {line["pid"] for line in first} == {first[0]["pid"]}
    assert len({line["ts"] for line in first}) == 1  # one timestamp per round
    assert {(line["signal"], line["value"]) for line in first if line.get("feature") == "a"} == {
        ("missing_ratio", 0.5),
        ("out_of_range_ratio", 0.0),
    }

    figures.fail = True
    with caplog.at_level(logging.ERROR, logger="mlship.app"):
        assert writer.write_round() == 0
    assert "cannot compute this round" in caplog.text
    figures.fail = False
    figures.rows = 8
    out.clear()
    assert writer.write_round() == 6  # the failed round's interval is in this one
    assert {json.loads(line)["value"] for line in out if b'"class":"0"' in line} == {1.0}

    def broken(data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    failing = SignalWriter(figures.read, FEATURES, ["0"], "v", 60.0, broken)
    figures.rows = 9
    with caplog.at_level(logging.WARNING, logger="mlship.app"):
        assert failing.write_round() == 0
    assert "cannot write to stdout" in caplog.text


def test_signal_writer_a_failed_baseline_read_makes_the_first_good_read_the_baseline() -> None:
    figures = Figures()
    figures.fail = True
    out: list[bytes] = []
    writer = SignalWriter(figures.read, FEATURES, [], "v", 60.0, out.append)
    figures.fail = False
    figures.rows = 5
    assert writer.write_round() == 0
    figures.rows = 7
    assert writer.write_round() == 4


def test_signal_writer_timer_writes_rounds_while_traffic_flows_and_the_last_at_close() -> None:
    figures = Figures()
    out: list[bytes] = []

    async def until_rounds(n: int) -> None:
        for _ in range(1000):  # no duration asserted: only that the round comes
            if _rounds(out) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{n} rounds expected, got {_rounds(out)}")

    async def run() -> None:
        writer = SignalWriter(figures.read, FEATURES, [], "v", 0.02, out.append)
        writer.start()
        figures.rows = 3
        await until_rounds(1)
        figures.rows = 6
        await until_rounds(2)
        await asyncio.sleep(0.2)  # ten intervals without traffic: no line
        assert _rounds(out) == 2
        figures.rows = 8
        await writer.aclose()  # the last interval, at once
        assert _rounds(out) == 3

    asyncio.run(run())
    missing_a = [
        json.loads(line)["value"]
        for line in out
        if b'"signal":"missing_ratio"' in line and b'"feature":"a"' in line
    ]
    assert missing_a == [0.5, 0.5, 0.5]
    assert len(out) == 3 * 4  # two ratios of two features per round


def _rounds(out: list[bytes]) -> int:
    return len({json.loads(line)["ts"] for line in out})


def test_signals_settings_interval_is_positive_and_at_most_a_minute() -> None:
    assert AppSettings().signal_interval_seconds == 60
    assert AppSettings(signal_interval_seconds=0.5).signal_interval_seconds == 0.5
    for bad in (0, -1, 61):
        with pytest.raises(ValidationError, match="signal_interval_seconds"):
            AppSettings(signal_interval_seconds=bad)


def test_signals_the_app_writes_the_last_interval_at_shutdown(
    logistic_bundle: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """One process: its own figures are the totals; the lines reach file descriptor 1."""
    X = test_split(logistic_bundle)[:120].copy()
    X[::4, 3] = 1e9  # mean_area above the training range in 30 rows
    settings = AppSettings(model_uri=str(logistic_bundle))
    capfd.readouterr()
    with TestClient(create_app(settings)) as client:
        for i in range(0, 120, 10):
            r = client.post("/invocations", json={"instances": X[i : i + 10].tolist()})
            assert r.status_code == 200
        labels = client.post("/invocations", json={"instances": X.tolist()}).json()["predictions"]
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]

    manifest = read_manifest(logistic_bundle)
    rows = np.concatenate([X, X])  # every row sent twice (the second time in one request)
    got = by_key(lines)
    reference = ReferenceBins(manifest)
    expected_psi = reference.psi(reference.profile(rows).counts, rows.shape[0])
    _, outside = direct_quality(rows, manifest)
    assert outside["mean_area"] >= 60
    for j, name in enumerate(manifest.feature_names):
        assert got[("missing_ratio", name, "test-logistic-0")] == 0.0
        assert got[("out_of_range_ratio", name, "test-logistic-0")] == outside[name] / 240
        assert got[("feature_psi", name, "test-logistic-0")] == pytest.approx(
            expected_psi[j], rel=1e-9
        )
    for c in (0, 1):
        share = labels.count(c) / len(labels)
        assert got[("class_share", str(c), "test-logistic-0")] == share


@pytest.mark.parametrize("off", [{"signals": False}, {"monitoring": False}])
def test_signals_off_writes_no_line(
    logistic_bundle: Path, capfd: pytest.CaptureFixture[str], off: dict[str, bool]
) -> None:
    X = test_split(logistic_bundle)[:20]
    settings = AppSettings.model_validate({"model_uri": str(logistic_bundle), **off})
    capfd.readouterr()
    with TestClient(create_app(settings)) as client:
        assert client.post("/invocations", json={"instances": X.tolist()}).status_code == 200
    assert "mlship.signal" not in capfd.readouterr().out


def test_signals_with_a_challenger_class_shares_are_per_answering_version(
    logistic_bundle: Path, forest_bundle: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Shares per version that answered (its shadow scores are not answers); the input figures
    carry the champion's version."""
    flags = tmp_path / "flags.json"
    flags.write_text(
        json.dumps({"flags": {"new_model": {"allow": ["bob"]}}, "shadow": {"percent": 100}})
    )
    settings = AppSettings(
        model_uri=str(logistic_bundle), challenger_uri=str(forest_bundle), flags_uri=str(flags)
    )
    X = test_split(logistic_bundle)[:60]
    answered: dict[str, list[int]] = {"test-logistic-0": [], "test-forest-0": []}
    capfd.readouterr()
    with TestClient(create_app(settings)) as client:
        for i in range(0, 60, 6):
            user = "bob" if i % 12 == 0 else "carol"
            r = client.post(
                "/invocations",
                json={"instances": X[i : i + 6].tolist()},
                headers={"X-User-ID": user},
            )
            assert r.status_code == 200
            answered[r.headers["x-model-version"]] += r.json()["predictions"]
    got = by_key([json.loads(line) for line in capfd.readouterr().out.splitlines()])

    assert all(answered.values())
    for version, labels in answered.items():
        for c in (0, 1):
            assert got[("class_share", str(c), version)] == labels.count(c) / len(labels)
    inputs = {k[2] for k in got if k[0] != "class_share"}
    assert inputs == {"test-logistic-0"}
