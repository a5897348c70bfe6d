"""HTTP load with ``wrk``: a Lua script of single-row bodies, and its latency report parsed."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_LATENCY = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class LoadResult:
    """One wrk run against one service at one concurrency."""

    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors plus non-2xx answers

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def write_script(path: Path, rows: np.ndarray) -> Path:
    """A wrk Lua script that POSTs ``{"features": row}`` bodies, cycling through ``rows``.

    Distinct rows keep any cache honest; each wrk thread starts at a different row.
    """
    bodies = [json.dumps({"features": [float(v) for v in row]}) for row in rows]
    lua_bodies = ",\n".join(json.dumps(b) for b in bodies)  # JSON strings are valid Lua strings
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{lua_bodies}\n}}\n"
        "local i = 0\n"
        "function setup(thread) i = i + 1; thread:set('start', i * 7) end\n"
        "function init(args) i = start or 0 end\n"
        "function request()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\n"
        "end\n"
    )
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> LoadResult:
    """Run wrk for ``seconds`` against ``url`` (127.0.0.1 only) and parse its report."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"benchmarks only send traffic to 127.0.0.1, not {url}")
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    return parse_wrk(out, connections, seconds)


def parse_wrk(out: str, connections: int, seconds: float) -> LoadResult:
    """Parse wrk's report (``--latency``)."""
    latencies = {int(p): float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(out)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None or 50 not in latencies or 99 not in latencies:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return LoadResult(
        connections=connections,
        seconds=seconds,
        requests=int(total.group(1)),
        requests_per_s=float(rps.group(1)),
        p50_ms=latencies[50],
        p99_ms=latencies[99],
        errors=errors,
    )
