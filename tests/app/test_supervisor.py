"""The worker supervisor with small real worker processes (spawned, as ``serve`` spawns them):
a worker that cannot start stops everything with its message and nothing binds; a worker that
dies after it served is replaced; SIGTERM stops every worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.supervisor import Supervisor, WorkerLink, WorkerStartError

ROOT = Path(__file__).resolve().parents[2]
GIVE_UP_S = 60.0


def _number() -> str:
    return multiprocessing.current_process().name.rsplit("-", 1)[-1]


def _second_cannot_load(marks: str, link: WorkerLink) -> None:
    """Worker 2 fails to load; worker 1 loads and notes it if it is ever told to bind."""
    if _number() == "2":
        time.sleep(0.5)  # worker 1 has loaded and is waiting by then
        link.failed("MLSHIP_EXAMPLE: cannot load it. Fix the example.")
        raise SystemExit(1)

    async def run() -> None:
        await link.loaded()
        Path(marks, "told-to-bind").touch()
        await asyncio.sleep(GIVE_UP_S)

    asyncio.run(run())


def _dies_silently(marks: str, link: WorkerLink) -> None:
    os._exit(3)


def _serves_and_dies_once(marks: str, link: WorkerLink) -> None:
    """Listens, records its start; the first start then dies, later ones serve until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    async def run() -> None:
        await link.loaded()
        link.listening()
        starts = len(list(Path(marks).glob("start-*")))
        Path(marks, f"start-{starts + 1}-pid-{os.getpid()}").touch()
        if starts == 0:
            os._exit(5)
        await asyncio.sleep(GIVE_UP_S)

    asyncio.run(run())


def test_supervisor_worker_failing_to_load_stops_all_and_none_binds(tmp_path: Path) -> None:
    supervisor = Supervisor(_second_cannot_load, (str(tmp_path),), 2, stop_timeout=10)

    with pytest.raises(WorkerStartError, match=r"^MLSHIP_EXAMPLE: cannot load it\. Fix"):
        supervisor.run()

    assert not (tmp_path / "told-to-bind").exists()
    assert supervisor.workers == []  # worker 1 was stopped, not left running


def test_supervisor_worker_dying_at_start_without_a_word_is_named(tmp_path: Path) -> None:
    supervisor = Supervisor(_dies_silently, (str(tmp_path),), 2, stop_timeout=10)

    with pytest.raises(WorkerStartError, match=r"exited with code 3 before it could serve"):
        supervisor.run()


def _supervise(target: str, marks: Path, workers: int, pattern: str, count: int) -> int:
    """Run a Supervisor of ``target`` (a function of this module) in its own process until
    ``count`` files match ``pattern`` in ``marks``, then SIGTERM it; its exit code."""
    code = (
        "from app.supervisor import Supervisor\n"
        f"from tests.app.test_supervisor import {target}\n"
        f"Supervisor({target}, ({str(marks)!r},), {workers}, stop_timeout=10).run()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + GIVE_UP_S
        while len(list(marks.glob(pattern))) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=GIVE_UP_S)
    finally:
        proc.kill()


def test_supervisor_replaces_a_worker_that_died_after_serving_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    returncode = _supervise("_serves_and_dies_once", tmp_path, 1, "start-*", 2)

    starts = sorted(p.name for p in tmp_path.glob("start-*"))
    assert [s.split("-pid-")[0] for s in starts] == ["start-1", "start-2"]
    assert returncode == 0
    second_pid = int(starts[1].split("-pid-")[1])
    with pytest.raises(ProcessLookupError):  # stopped with the supervisor
        os.kill(second_pid, 0)


def _second_dies_once(marks: str, link: WorkerLink) -> None:
    """Records its start under its link's number; worker 2's first start then dies."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    async def run() -> None:
        await link.loaded()
        link.listening()
        assert str(link.number) == _number()
        earlier = len(list(Path(marks).glob(f"number-{link.number}-*")))
        Path(marks, f"number-{link.number}-start-{earlier + 1}").touch()
        if link.number == 2 and earlier == 0:
            os._exit(5)
        await asyncio.sleep(GIVE_UP_S)

    asyncio.run(run())


def test_supervisor_a_replaced_worker_keeps_its_number(tmp_path: Path) -> None:
    """Worker 1 writes the model-signal lines for all: its number must not move to another."""
    assert _supervise("_second_dies_once", tmp_path, 2, "number-*", 3) == 0

    assert sorted(p.name for p in tmp_path.glob("number-*")) == [
        "number-1-start-1",
        "number-2-start-1",
        "number-2-start-2",
    ]
