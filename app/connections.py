"""What one worker knows about its connections: the limits it applies (from the settings) and
the pool of connections that carry no request, which a new connection may displace when the
worker is at ``MLSHIP_MAX_CONNECTIONS``. The HTTP protocol (``app/protocol.py``) applies them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

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
