"""The mlship command line as a process."""

from __future__ import annotations

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


def test_cli_serve_help_states_the_workers_default_that_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.serve import load_settings
    from app.settings import cpus_available

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
