"""Several worker processes: started together, bound only once all have loaded, stopped together.

- Start: every worker loads, then reports over its pipe; only when all have loaded are they
  told to bind, so a failed start never leaves the port bound by the others. A worker that
  fails (or dies) before it listens stops them all, and :meth:`Supervisor.run` raises
  :class:`WorkerStartError` with the worker's message: one ``error:`` line, exit 1, no restarts.
- Run: a worker that dies after it listened (killed for memory, say) is replaced; the new one
  binds as soon as it has loaded.
- Stop: SIGTERM or SIGINT is passed to every worker as SIGTERM; each stops accepting, drains
  its connections and exits. Stragglers are killed after ``stop_timeout`` seconds.

``serve`` makes every check that can fail (settings, model, keys, port) before it starts workers, so
a worker failing to start is rare; the supervisor still ends the start cleanly when it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from core.errors import MlshipError

log = logging.getLogger("mlship.app")

_LOADED = "loaded"
_LISTEN = "listen"
_LISTENING = "listening"
_FAILED = "failed"


class WorkerStartError(MlshipError):
    """A worker could not start; the message is the worker's own (it names the fix)."""


class WorkerLink:
    """A worker's end of its pipe to the supervisor, its number (1 to ``workers``; a replaced
    worker's successor has its number) and the workers' connection counts in shared memory
    (one ``int`` each, :class:`app.connections.ConnectionShares`)."""

    def __init__(self, conn: Connection, number: int, connection_counts: Any = None) -> None:
        self._conn = conn
        self.number = number
        self.connection_counts = connection_counts

    async def loaded(self) -> None:
        """Report the app loaded, then wait (without blocking the event loop) until every
        worker has: the supervisor then says bind. Exits quietly if it says anything else."""
        self._conn.send(_LOADED)
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not readable.done():  # the loop may call it again before the reader is removed
                readable.set_result(None)

        loop.add_reader(self._conn.fileno(), on_readable)
        try:
            await readable
        finally:
            loop.remove_reader(self._conn.fileno())
        try:
            told = self._conn.recv()
        except EOFError:  # the supervisor is gone
            told = None
        if told != _LISTEN:
            raise SystemExit(0)

    def listening(self) -> None:
        """Report the socket bound, and from now on stop (as on SIGTERM) if the supervisor
        goes away: a worker must not serve on, unsupervised, after it was killed."""
        self._conn.send(_LISTENING)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._on_supervisor_message, loop)

    def _on_supervisor_message(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._conn.recv()  # nothing is sent once the worker listens
        except (EOFError, OSError):
            loop.remove_reader(self._conn.fileno())
            os.kill(os.getpid(), signal.SIGTERM)

    def failed(self, message: str) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            self._conn.send((_FAILED, message))


@dataclass
class _Worker:
    number: int
    process: BaseProcess
    conn: Connection
    loaded: bool = False
    listening: bool = False
    failure: str | None = None
    closed: bool = False  # its end of the pipe: the process is exiting


class Supervisor:
    """Run ``workers`` processes of ``target(*args, link)`` (see the module docstring).

    ``target`` must be importable by name (processes are spawned, not forked: a fork would copy
    the parent's threads and event-loop state) and call ``await link.loaded()`` before it binds,
    ``link.listening()`` once it listens, and ``link.failed(message)`` before it exits on an
    error.
    """

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        workers: int,
        stop_timeout: float,
    ) -> None:
        self.target = target
        self.args = args
        self.count = workers
        self.stop_timeout = stop_timeout
        self.workers: list[_Worker] = []
        self._context = multiprocessing.get_context("spawn")
        self._connection_counts = self._context.RawArray("i", workers)
        self._stopping = False
        self._serving = False  # every first worker listened once

    def run(self) -> None:
        """Run until SIGTERM or SIGINT, then stop every worker and return.

        Raises:
            WorkerStartError: when a worker fails before it listens (the others are stopped).
        """
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for number in range(1, self.count + 1):
                self._spawn(number)
            while not self._stopping:
                self._step(wake_r)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(previous_wakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            wake_r.close()
            wake_w.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _spawn(self, number: int) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=self.target,
            args=(*self.args, WorkerLink(child_end, number, self._connection_counts)),
            name=f"mlship-worker-{number}",
        )
        process.start()
        child_end.close()
        self.workers.append(_Worker(number, process, parent_end))

    def _step(self, wake: socket.socket) -> None:
        conns = [w.conn for w in self.workers if not w.closed]
        sentinels = [w.process.sentinel for w in self.workers]
        wait([wake, *conns, *sentinels])
        with contextlib.suppress(BlockingIOError):
            while wake.recv(512):
                pass
        if self._stopping:
            return
        for worker in list(self.workers):
            self._receive(worker)
            if not worker.process.is_alive():
                self._exited(worker)

    def _receive(self, worker: _Worker) -> None:
        while True:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.closed = True
                return
            if message == _LOADED:
                worker.loaded = True
                if self._serving:
                    self._tell_listen(worker)
                elif all(w.loaded for w in self.workers):
                    for w in self.workers:
                        self._tell_listen(w)
            elif message == _LISTENING:
                worker.listening = True
                if not self._serving and all(w.listening for w in self.workers):
                    self._serving = True
                    log.info(
                        "workers listening",
                        extra={"workers": [w.process.pid for w in self.workers]},
                    )
            elif isinstance(message, tuple) and message[0] == _FAILED:
                worker.failure = str(message[1])

    @staticmethod
    def _tell_listen(worker: _Worker) -> None:
        with contextlib.suppress(OSError):  # it just died: its sentinel reports that next
            worker.conn.send(_LISTEN)

    def _exited(self, worker: _Worker) -> None:
        worker.process.join()
        if not worker.closed:
            self._receive(worker)  # a failure message sent just before the exit
        worker.conn.close()
        self.workers.remove(worker)
        code = worker.process.exitcode
        if not worker.listening:
            raise WorkerStartError(
                worker.failure
                or f"Worker {worker.number} exited with code {code} before it could serve; "
                "its log above says why."
            )
        log.warning(
            "worker exited; starting a new one",
            extra={"workers": [worker.process.pid], "status": code},
        )
        self._spawn(worker.number)

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker drains, then exits
        deadline = time.monotonic() + self.stop_timeout
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker did not stop in time; killing it")
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers.clear()
