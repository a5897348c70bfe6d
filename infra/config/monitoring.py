"""Alarm thresholds and who is told when an alarm fires."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.keys import Reader

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Alarms:
    """Alarm thresholds and who is told."""

    latency_p99_ms: int
    errors_5xx: int
    errors_4xx: int
    cpu_percent: int
    memory_percent: int
    emails: tuple[str, ...]


def parse_alarms(r: Reader) -> Alarms:
    """``alarm*`` thresholds and ``alertEmails``.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    return Alarms(
        latency_p99_ms=r.integer("alarmLatencyP99Ms", 1, 60_000),
        errors_5xx=r.integer("alarm5xxCount", 0, 1_000_000),
        errors_4xx=r.integer("alarm4xxCount", 0, 1_000_000),
        cpu_percent=r.integer("alarmCpuPercent", 1, 10_000),
        memory_percent=r.integer("alarmMemoryPercent", 1, 100),
        emails=r.strings("alertEmails", _EMAIL_RE, "an e-mail address such as ops@example.com"),
    )
