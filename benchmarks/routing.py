"""The cost of routing: the service alone, then with a challenger under a split and a shadow.

``python -m benchmarks.run --only-routing`` (and ``make bench``, as one section) serves the
logistic bundle four ways with ``mlship serve`` (its defaults, prediction cache off):

- ``none``: no challenger (the request path of every other figure);
- ``split-50``: a challenger (the same model kind, another seed) answering a sticky 50 % of
  ``X-User-ID`` keys;
- ``shadow-10`` / ``shadow-100``: the champion answers, the challenger also scores 10 % / every
  request off the response path (it still takes CPU from the same workers).

Every request carries an ``X-User-ID`` (1,000 keys cycling), for all four, so the only
difference is the policy. The four run at once and are measured round-robin (best of three runs
per cell), and the in-process cost of one routing decision is timed apart. Traffic goes to
127.0.0.1 only, each cell bounded by ``--seconds``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.load import run_wrk
from benchmarks.servers import Service, free_port, post_json, running
from core.flags import CHALLENGER_FLAG, FeatureFlags
from tests.factories import make_bundle

POLICIES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "split-50": {"flags": {"new_model": {"percent": 50}}},
    "shadow-10": {"shadow": {"percent": 10}},
    "shadow-100": {"shadow": {"percent": 100}},
}
CONNECTIONS = (1, 8, 64)
KEYS = 1000


def write_keyed_script(path: Path, rows: np.ndarray) -> Path:
    """A wrk script of single-row bodies, each request with the next of ``KEYS`` user ids."""
    bodies = ",\n".join(json.dumps(json.dumps({"features": [float(v) for v in r]})) for r in rows)
    path.write_text(
        f"local bodies = {{\n{bodies}\n}}\n"
        "local i = 0\n"
        "function setup(thread) i = i + 1; thread:set('start', i * 7) end\n"
        "function init(args) i = start or 0 end\n"
        "function request()\n"
        "  i = i + 1\n"
        "  local headers = {['Content-Type'] = 'application/json',\n"
        f"                   ['X-User-ID'] = 'user-' .. (i % {KEYS})}}\n"
        "  return wrk.format('POST', nil, headers, bodies[i % #bodies + 1])\n"
        "end\n"
    )
    return path


def bench_routing(work: Path, seconds: float, rounds: int = 3) -> dict[str, Any]:
    """Figures per policy and connection count: req/s, p50 and p99 in ms, errors.

    All four services run at once and the cells are measured round-robin, ``rounds`` times;
    each cell keeps its best run. A machine shared with other work only ever slows a run down,
    so interleaving and the best of several runs keep the comparison between policies fair.
    """
    champion = make_bundle(work / "route-champion", "logistic", seed=0)
    challenger = make_bundle(work / "route-challenger", "logistic", seed=1)
    test_X = np.load(work / "route-champion-test_X.npy")
    script = write_keyed_script(work / "keyed.lua", test_X)
    best: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in POLICIES}
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(_serve(work, name, policy, champion, challenger))
            for name, policy in POLICIES.items()
        }
        for url in urls.values():
            answer = post_json(f"{url}/v1/predict", {"features": test_X[0].tolist()})
            if not isinstance(answer, dict) or "model_version" not in answer:
                raise RuntimeError(f"routing: unexpected answer {answer!r}")
            run_wrk(f"{url}/v1/predict", script, 8, 1.0)  # warm-up
        for r in range(rounds):
            print(f"   routing round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            for c in CONNECTIONS:
                for name, url in urls.items():
                    cell = run_wrk(f"{url}/v1/predict", script, c, seconds).to_json()
                    kept = best[name].get(str(c))
                    if kept is None or cell["requests_per_s"] > kept["requests_per_s"]:
                        best[name][str(c)] = cell
    return {"http": best, "decision_ns": decision_ns()}


@contextmanager
def _serve(
    work: Path, name: str, policy: dict[str, Any] | None, champion: Path, challenger: Path
) -> Iterator[str]:
    port = free_port()
    env = {
        "MLSHIP_HOST": "127.0.0.1",
        "MLSHIP_PORT": str(port),
        "MLSHIP_CACHE_ENABLED": "false",
        "MLSHIP_ACCESS_LOG": "false",
    }
    if policy is not None:
        flags = work / f"flags-{name}.json"
        flags.write_text(json.dumps(policy))
        env |= {"MLSHIP_CHALLENGER_URI": str(challenger), "MLSHIP_FLAGS_URI": str(flags)}
    argv = [sys.executable, "-m", "cli.main", "serve", "--model", str(champion)]
    with running(Service(name, argv, "/ping", env), port, work / f"route-{name}.log") as url:
        yield url


def decision_ns(n: int = 200_000) -> dict[str, float]:
    """In-process cost of one routing decision (the sticky-hash flag check), ns per call."""
    policy = FeatureFlags.model_validate(
        {"flags": {CHALLENGER_FLAG: {"percent": 50, "allow": ["a"], "deny": ["b"]}}}
    )
    keys = [f"user-{i % KEYS}" for i in range(n)]
    started = time.perf_counter()
    for key in keys:
        policy.is_enabled(CHALLENGER_FLAG, key)
    return {"is_enabled": round((time.perf_counter() - started) / n * 1e9, 1)}


def render_routing(results: dict[str, Any]) -> str:
    """One table: each policy's req/s, p50 and p99 next to the no-challenger figures."""
    figures = results["http"]
    lines = [
        f"One routing decision in process: {results['decision_ns']['is_enabled']:g} ns",
        "Routing overhead, single-row POST /v1/predict with X-User-ID (req/s, p50 ms, p99 ms; "
        "ratio = req/s / none)",
        f"{'policy':<11}{'conns':>6} {'req/s':>9} {'p50':>7} {'p99':>7} {'ratio':>6} {'errors':>7}",
    ]
    for name, cells in figures.items():
        for c, cell in cells.items():
            base = figures["none"][c]["requests_per_s"]
            lines.append(
                f"{name:<11}{c:>6} {cell['requests_per_s']:>9.0f} {cell['p50_ms']:>7.2f} "
                f"{cell['p99_ms']:>7.2f} {cell['requests_per_s'] / base:>6.2f} "
                f"{cell['errors']:>7}"
            )
    return "\n".join(lines)
