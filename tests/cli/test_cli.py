"""The mlship command line as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_cli_output_cut_short_by_the_reader_ends_quietly() -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "cli", "plan", "dev", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert cli.stdout is not None
    # The reader goes away before the plan (seconds of work) prints anything, like `| head`
    # would after its lines: the first write then fails with EPIPE, deterministically.
    cli.stdout.close()
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 141, err.decode()
    assert b"Traceback" not in err


@pytest.mark.slow
def test_train_leaves_nothing_in_the_temp_dir(tmp_path: Path) -> None:
    """Registry, validation, ONNX export: a whole `mlship train` leaves $TMPDIR as it found it."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(ROOT / "params.yaml", work / "params.yaml")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"ORT_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI", "PYTHONPATH"}
    }
    env.update({"TMPDIR": str(temp), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "train"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "validated against breast_cancer.json" in proc.stdout
    assert "model.onnx added" in proc.stdout
    assert "registry  mlship version 1" in proc.stdout
    assert (work / ".mlship" / "mlflow.db").is_file()
    assert sorted(p.name for p in temp.iterdir()) == []


def test_cli_serve_help_states_the_workers_default_that_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.serve import load_settings
    from core.runtime import cpus_available

    monkeypatch.delenv("MLSHIP_WORKERS", raising=False)
    shown = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    assert "--workers WORKERS Worker processes (default: MLSHIP_WORKERS or one per CPU)." in (
        " ".join(shown.split())
    )
    assert load_settings(workers=None).workers == cpus_available()
