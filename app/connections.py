"""What one worker knows about its connections: the limits it applies (from the settings) and
the pool of connections that carry no request, which a new connection may displace when the
worker is at ``MLSHIP_MAX_CONNECTIONS``. The HTTP protocol (``app/protocol.py``) applies them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from app.settings import AppSettings

log = logging.getLogger("mlship.app")

# Refusals are logged at most this often per reason, with the count since the last line.
_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds one worker applies to every connection (from ``AppSettings``)."""

    max_connections: int
    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: int

    @classmethod
    def from_settings(cls, settings: AppSettings) -> ConnectionLimits:
        return cls(
            max_connections=settings.max_connections,
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keep_alive_timeout=settings.keep_alive_timeout,
        )

    @property
    def max_lingering(self) -> int:
        """Refused connections kept open at once to deliver their answer; beyond, cut at once."""
        return max(16, self.max_connections // 4)


class Evictable(Protocol):
    def evict(self) -> None:
        """Close the connection now (it carries no request)."""
        ...


class ConnectionPool:
    """The connections of one worker that carry no request (idle or half-sent), oldest first:
    the ones a new connection may displace when the worker is at its limit."""

    def __init__(self) -> None:
        self.idle: dict[Evictable, None] = {}
        self.lingering = 0
        self._refused: dict[str, tuple[int, float]] = {}

    def mark_idle(self, conn: Evictable) -> None:
        self.idle.pop(conn, None)
        self.idle[conn] = None  # to the end: the most recently active

    def mark_busy(self, conn: Evictable) -> None:
        self.idle.pop(conn, None)

    def evict_oldest(self) -> bool:
        """Close the oldest connection without a request; False when there is none."""
        if not self.idle:
            return False
        oldest = next(iter(self.idle))
        oldest.evict()
        self.note("evicted", "connection limit reached: closed the oldest idle connections")
        return True

    def note(self, reason: str, message: str) -> None:
        """Log a refusal, at most once per ``_LOG_EVERY_S`` per reason (an attack must not
        flood the logs)."""
        count, last = self._refused.get(reason, (0, 0.0))
        now = time.monotonic()
        if now - last >= _LOG_EVERY_S:
            log.warning("%s (%d since the last report)", message, count + 1)
            self._refused[reason] = (0, now)
        else:
            self._refused[reason] = (count + 1, last)


class ConnectionShares:
    """Keep-alive connections spread evenly over the workers, by closing the surplus.

    Each worker binds its own ``SO_REUSEPORT`` socket and the kernel picks one by a hash of
    the client's address and port: over 8 keep-alive connections and 2 workers the split is
    4/4 only about a quarter of the time, and the 2 connections of a Batch Transform job
    (``MaxConcurrentTransforms``: one per worker) land on the same worker half the time,
    leaving the other idle for the whole job. Every worker writes how many connections it
    holds into its slot of an array in shared memory; a worker holding more than its share
    (the total over the workers, divided by their number, rounded up) answers the next
    request of one of them with ``Connection: close``, and the client's next connection is
    hashed anew, onto any worker. Like gRPC's ``max_connection_age`` or Envoy's exact
    connection balance, only the surplus ever moves: a balanced split closes nothing.

    Only connections to the service's port count: a scraper's keep-alive connection to
    ``MLSHIP_METRICS_PORT`` would otherwise fill a worker's share (2 job connections could
    then stay on one worker) and be told to close itself.

    Args:
        counts: One ``int`` per worker in shared memory (``RawArray("i", workers)``).
        index: This worker's slot (its number minus one).
        port: The service's port, the one whose connections are balanced.
    """

    def __init__(self, counts: Any, index: int, port: int) -> None:
        self.port = port
        self._counts = memoryview(counts).cast("B").cast("i")
        self._index = index
        self._workers = len(self._counts)
        self._leaving = 0  # connections told to close that are not closed yet
        self._counts[index] = 0  # a replaced worker's slot starts afresh

    def held(self, connections: int) -> None:
        """Record that this worker now holds ``connections`` (on every open and close)."""
        self._counts[self._index] = connections - self._leaving

    def should_leave(self, connections: int) -> bool:
        """Whether the connection whose request just arrived should close after its answer
        (then call :meth:`left` when it has closed)."""
        mine = connections - self._leaving
        if mine < 2:
            return False
        counts = self._counts
        total = sum(counts) - counts[self._index] + mine
        if mine <= -(-total // self._workers):
            return False
        self._leaving += 1
        counts[self._index] = mine - 1
        return True

    def left(self) -> None:
        """A connection told to close has closed."""
        self._leaving -= 1
