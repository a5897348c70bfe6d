"""``make bench``: this service next to the naive baseline and a no-op ceiling, in one run.

For a logistic-regression and a 100-tree random-forest bundle (``tests.factories``), it measures
single-row ``POST /v1/predict`` with wrk at 1, 8 and 64 connections against:

- this service (``mlship serve``, its defaults, prediction cache off so that every request
  reaches the model), and the same with prediction capture on (``MLSHIP_CAPTURE_DIR``), run
  right after it: the capture's cost;
- the naive baseline (``benchmarks/naive_service.py``: the seed's tutorial service);
- a no-op endpoint on the same server stack (the HTTP ceiling of this machine);

then the in-process ``predict`` ceiling (rows/s at batch 1 and 256, and at the batch-scoring
chunk size), and batch scoring of generated 1 M and 5 M row Parquet files (rows/s and the
scoring process's peak memory). It prints one table with the ratios ours / naive and the
targets of the performance issue, and writes the figures to ``bench-results/``.

The workers section (``--workers-scaling`` runs only it) serves the logistic bundle with one
worker and with two, and loads each at 8 keep-alive connections with wrk on the same machine:
two workers should give at least 1.5x one worker's throughput on 2 CPUs.

Traffic goes to 127.0.0.1 only; every load run is bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from benchmarks.load import LoadResult, run_wrk, write_script
from benchmarks.payloads import bench_payloads, render_payloads
from benchmarks.report import render, targets
from benchmarks.routing import bench_routing, render_routing
from benchmarks.scoring import (
    decode_rows_per_s,
    generate_parquet,
    in_process_rows_per_s,
    include_onnx,
    read_matrix,
    score_in_child,
    scoring_model,
)
from benchmarks.servers import Service, free_port, post_json, running, uvicorn_service
from core.memory import keep_large_blocks
from core.model import load_model
from tests.factories import make_bundle

CONNECTIONS = (1, 8, 64)
SCRIPT_ROWS = 512
RESULTS_DIR = Path("bench-results")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--models", default="logistic,forest", help="Comma-separated kinds.")
    parser.add_argument("--seconds", type=float, default=6.0, help="wrk duration per cell.")
    parser.add_argument("--rows", default="1000000,5000000", help="Batch-scoring input sizes.")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="Batch-scoring chunk.")
    parser.add_argument("--skip-http", action="store_true", help="Only in-process and batch.")
    parser.add_argument("--skip-batch", action="store_true", help="Only HTTP and in-process.")
    parser.add_argument(
        "--only-payloads", action="store_true", help="Only the Batch Transform payload figures."
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="Results directory.")
    parser.add_argument(
        "--workers-scaling",
        action="store_true",
        help="Only the workers section: 1 and 2 workers at 8 connections (logistic).",
    )
    parser.add_argument(
        "--scaling-rounds",
        type=int,
        default=3,
        help="Runs of each worker count, interleaved; the best counts (default 3).",
    )
    parser.add_argument(
        "--only-routing", action="store_true", help="Only the routing-overhead section."
    )
    args = parser.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",") if r]
    # The in-process references (predict, Parquet decode, the payloads' parse + predict) run
    # with the allocator settings `serve` and `mlship predict` use: large freed blocks are
    # reused, not returned and faulted in again (which made the references vary by half).
    keep_large_blocks()
    if args.only_routing:
        return routing_only(args)

    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds_per_cell": args.seconds,
        "chunk_rows": args.chunk_rows,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="mlship-bench-") as tmp:
        work = Path(tmp)
        only = args.only_payloads or args.workers_scaling or args.only_routing
        if not only:
            for kind in args.models.split(","):
                print(f"== {kind}", file=sys.stderr, flush=True)
                results["models"][kind] = bench_model(kind, work, args, rows)
        if args.workers_scaling or not (args.skip_http or only):
            print("== workers", file=sys.stderr, flush=True)
            results["workers_scaling"] = bench_workers(work, args.seconds, args.scaling_rounds)
        if args.only_payloads or not (args.skip_http or only):
            results["payloads"] = bench_payloads(work)
        if args.only_routing or not (args.skip_http or only):
            print("== routing", file=sys.stderr, flush=True)
            results["routing"] = bench_routing(work, args.seconds)
    results["targets"] = targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)

    print(render(results))
    if "payloads" in results:
        print("\n".join(render_payloads(results["payloads"])))
    if "routing" in results:
        print("\n" + render_routing(results["routing"]))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"bench-{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(results, indent=2))
    print(f"\nfigures written to {args.out / f'bench-{stamp}.json'}")
    return 0


def routing_only(args: argparse.Namespace) -> int:
    """``--only-routing``: the routing section alone (benchmarks/routing.py)."""
    with tempfile.TemporaryDirectory(prefix="mlship-bench-") as tmp:
        figures = bench_routing(Path(tmp), args.seconds)
    print(render_routing(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"routing-{stamp}.json").write_text(json.dumps(figures, indent=2))
    return 0


def bench_model(kind: str, work: Path, args: argparse.Namespace, rows: list[int]) -> dict[str, Any]:
    bundle = make_bundle(work / kind, kind)  # type: ignore[arg-type]
    test_X = np.load(work / f"{kind}-test_X.npy")
    out: dict[str, Any] = {"onnx": include_onnx(bundle, test_X)}
    model = load_model(bundle)
    out |= {"version": model.version, "features": model.n_features}

    if not args.skip_http:
        rng = np.random.default_rng(1)
        script_rows = test_X[rng.integers(0, len(test_X), SCRIPT_ROWS)]
        script_rows = script_rows * rng.normal(1.0, 0.01, script_rows.shape)
        script = write_script(work / f"{kind}.lua", script_rows)
        joblib_path = work / f"{kind}.joblib"
        joblib.dump(model.estimator, joblib_path)
        expected = model.predict(script_rows[:1]).labels.tolist()
        capture_dir = work / f"{kind}-capture"
        listed = services(bundle, joblib_path, out["onnx"]["included"], capture_dir)
        out["http"] = {
            name: bench_service(
                service,
                work,
                script,
                args.seconds,
                script_rows[0],
                expected,
                probe=capture_probe if name == "ours-capture" else None,
            )
            for name, service in listed.items()
        }
        if out["http"].get("ours-capture") is not None:
            out["capture"] = capture_summary(capture_dir, out["http"]["ours-capture"])

    out["in_process"] = {
        "batch_1": in_process_rows_per_s(model, test_X, 1, 1.5),
        "batch_256": in_process_rows_per_s(model, np.concatenate([test_X] * 4), 256, 1.5),
        "capture_cpu_us": capture_cpu_us(model, test_X, work / f"{kind}-capture-cpu"),
    }
    if not args.skip_batch:
        out["batch"] = {}
        for n in rows:
            print(f"   batch scoring {n:,} rows", file=sys.stderr, flush=True)
            src = generate_parquet(work / f"{kind}-{n}.parquet", model, test_X, n)
            # The reference, measured just before on the same rows: the machine's load is
            # the same for both figures.
            # Best of several runs for both figures: other processes on the machine only ever
            # slow a run down.
            X = read_matrix(src, model)
            # In-process predict with the model the scorer uses (same runtime, same threads).
            scorer = scoring_model(bundle)
            reference = max(
                in_process_rows_per_s(scorer, X, args.chunk_rows, 0.0) for _ in range(3)
            )
            del X
            decode = max(decode_rows_per_s(src, model) for _ in range(3))
            dst = work / f"{kind}-{n}-out.parquet"
            # 2 fresh processes of 2 passes each: the best pass against the decode's best of
            # 3 in one process (the first pass of each process also pays its page faults,
            # shown beside as the first pass's figure).
            runs = [score_in_child(bundle, src, dst, args.chunk_rows) for _ in range(2)]
            scored = max(runs, key=lambda r: r.rows_per_s)
            out["batch"][str(n)] = scored.to_json() | {
                "in_process_rows_per_s": reference,
                "decode_rows_per_s": decode,
                "peak_rss_mb": max(r.peak_rss_mb for r in runs),
                "first_pass_rows_per_s": max(r.first_pass_rows_per_s for r in runs),
            }
            src.unlink()
            dst.unlink()
    return out


SCALING_CONNECTIONS = 8
SCALING_WORKERS = (1, 2)


def bench_workers(work: Path, seconds: float, rounds: int) -> dict[str, Any] | None:
    """Our service with 1 and with 2 workers, logistic bundle, 8 connections, same run.

    The configurations are measured in turns (1, 2, 1, 2, ...) and each keeps its best run:
    other processes on the machine only ever slow a run down.
    """
    if importlib.util.find_spec("app.serve") is None:
        return None
    kind = "logistic"
    bundle = make_bundle(work / "scaling-logistic", "logistic")
    test_X = np.load(work / "scaling-logistic-test_X.npy")
    include_onnx(bundle, test_X)  # served as `ours` is, by default
    model = load_model(bundle)
    script_rows = test_X[np.random.default_rng(1).integers(0, len(test_X), SCRIPT_ROWS)]
    script = write_script(work / "scaling.lua", script_rows)
    expected = model.predict(script_rows[:1]).labels.tolist()
    best: dict[int, dict[str, Any]] = {}
    runs: dict[int, list[float]] = {w: [] for w in SCALING_WORKERS}
    noop_best: dict[int, float] = {}
    for _ in range(rounds):
        for workers in SCALING_WORKERS:
            service = ours_service("ours", bundle, workers)
            cells = bench_service(
                service, work, script, seconds, script_rows[0], expected, (SCALING_CONNECTIONS,)
            )
            cell = (cells or {}).get(str(SCALING_CONNECTIONS))
            if cell is None:
                return None
            runs[workers].append(cell["requests_per_s"])
            if workers not in best or cell["requests_per_s"] > best[workers]["requests_per_s"]:
                best[workers] = cell
            # The same harness against an app that does nothing: how far 2 workers can scale
            # at all with the load generator on the same cores.
            noop = uvicorn_service("noop", "benchmarks.noop_service:app", workers, {})
            noop_cells = bench_service(
                noop, work, script, seconds, script_rows[0], expected, (SCALING_CONNECTIONS,)
            )
            noop_cell = (noop_cells or {}).get(str(SCALING_CONNECTIONS))
            if noop_cell is not None:
                noop_best[workers] = max(noop_best.get(workers, 0.0), noop_cell["requests_per_s"])
    one, two = best[1], best[2]
    return {
        "model": kind,
        "connections": SCALING_CONNECTIONS,
        "rounds": rounds,
        "by_workers": {str(w): best[w] for w in SCALING_WORKERS},
        "all_runs_requests_per_s": {str(w): runs[w] for w in SCALING_WORKERS},
        "noop_by_workers": {str(w): noop_best[w] for w in noop_best},
        "noop_ratio": noop_best[2] / noop_best[1] if len(noop_best) == 2 else None,
        "ratio": two["requests_per_s"] / one["requests_per_s"],
    }


def ours_service(name: str, bundle: Path, workers: int | None = None) -> Service:
    """``mlship serve`` on ``bundle`` with its defaults, bar the cache and the access log."""
    serve = ["serve", "--model", str(bundle), "--host", "127.0.0.1", "--port", "{port}"]
    if workers is not None:
        serve += ["--workers", str(workers)]
    return Service(
        name=name,
        argv=[sys.executable, "-m", "cli.main", *serve],
        ready_path="/ping",
        # The port twice: as the flag, and as the variable the settings read.
        env={
            "MLSHIP_PORT": "{port}",
            "MLSHIP_HOST": "127.0.0.1",
            # Every request reaches the model, and no access log (the baseline has none).
            "MLSHIP_CACHE_ENABLED": "false",
            "MLSHIP_ACCESS_LOG": "false",
        },
    )


def services(
    bundle: Path, joblib_path: Path, onnx: bool, capture_dir: Path
) -> dict[str, Service | None]:
    ours: Service | None = None
    ours_capture: Service | None = None
    ours_sklearn: Service | None = None
    if importlib.util.find_spec("app.serve") is not None:
        ours = ours_service("ours", bundle)
        # The same service writing every prediction to capture files, measured right after
        # it: the capture's cost on the request path.
        ours_capture = Service(
            "ours-capture",
            ours.argv,
            ours.ready_path,
            {**ours.env, "MLSHIP_CAPTURE_DIR": str(capture_dir)},
        )
        if onnx:  # the same service with scikit-learn computing, for comparison
            ours_sklearn = Service(
                "ours-sklearn",
                ours.argv,
                ours.ready_path,
                {**ours.env, "MLSHIP_RUNTIME": "sklearn"},
            )
    workers = os.cpu_count() or 1
    return {
        "ours": ours,
        "ours-capture": ours_capture,
        "ours-sklearn": ours_sklearn,
        "naive": uvicorn_service(
            "naive",
            "benchmarks.naive_service:app",
            1,
            {"NAIVE_MODEL_PATH": str(joblib_path)},
        ),
        "noop": uvicorn_service("noop", "benchmarks.noop_service:app", workers, {}),
    }


def bench_service(
    service: Service | None,
    work: Path,
    script: Path,
    seconds: float,
    row: np.ndarray,
    expected: list[Any],
    connections: tuple[int, ...] = CONNECTIONS,
    probe: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """wrk at each of CONNECTIONS against ``service``; ``probe(url)`` runs before it stops and
    its figures are kept under ``"probe"``."""
    if service is None:
        return None
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in service.argv]
    env = {k: v.replace("{port}", str(port)) for k, v in service.env.items()}
    live = Service(service.name, argv, service.ready_path, env)
    print(f"   {service.name}", file=sys.stderr, flush=True)
    log = work / f"{service.name}.log"
    try:
        with running(live, port, log) as url:
            answer = post_json(f"{url}/v1/predict", {"features": [float(v) for v in row]})
            if service.name != "noop":
                check_answer(service.name, answer, expected)
            warmup = run_wrk(f"{url}/v1/predict", script, 8, 1.0)  # not reported
            cells: list[LoadResult] = [
                run_wrk(f"{url}/v1/predict", script, c, seconds) for c in connections
            ]
            probed = probe(url) if probe is not None else None
    except (RuntimeError, OSError) as e:
        # One broken service must not hide the others' figures; the table shows n/a.
        print(f"   {service.name} failed: {e}", file=sys.stderr, flush=True)
        return None
    out: dict[str, Any] = {str(r.connections): r.to_json() for r in cells}
    if probed is not None:
        out["probe"] = probed | {"warmup_requests": warmup.requests}
    return out


def capture_cpu_us(model: Any, X: np.ndarray, directory: Path, records: int = 20_000) -> float:
    """CPU microseconds one captured single-row prediction costs the serving process: queueing
    it on the request path plus serialising and writing it on the writer thread (process CPU
    time counts every thread; best of 3, as other processes only ever add to it)."""
    from app.capture import CaptureWriter

    rows = [X[i % len(X)][None, :] for i in range(records)]
    predictions = [model.predict(r) for r in rows[: len(X)]]
    best = float("inf")
    for attempt in range(3):
        writer = CaptureWriter(
            directory / str(attempt), model.version, model.classes, max_queued_rows=records
        )
        started = time.process_time()
        writer.start()
        for i, row in enumerate(rows):
            writer.submit(row, predictions[i % len(predictions)], f"bench-{i}")
        writer.close()
        best = min(best, (time.process_time() - started) / records * 1e6)
        if writer.written != records:
            raise RuntimeError(f"capture wrote {writer.written} of {records} records")
    return best


def capture_probe(url: str) -> dict[str, Any]:
    """Predictions the capture dropped (its queue was full), from ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:  # noqa: S310 - 127.0.0.1
        text = r.read().decode()
    dropped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlship_capture_dropped_total")
    )
    return {"dropped": dropped}


def capture_summary(directory: Path, cells: dict[str, Any]) -> dict[str, Any]:
    """Records in the complete capture files, next to the requests wrk saw answered (the
    check and warm-up requests and answers wrk did not count are captured too)."""
    files = list(directory.rglob("*.jsonl"))
    records = sum(sum(1 for _ in f.open("rb")) for f in files)
    answered = sum(cells[str(c)]["requests"] for c in CONNECTIONS)
    probe = cells.get("probe") or {}
    return {
        "files": len(files),
        "records": records,
        "answered_in_cells": answered,
        "warmup_requests": probe.get("warmup_requests"),
        "dropped": probe.get("dropped"),
        "incomplete_files": len(list(directory.rglob("*.part"))),
    }


def check_answer(name: str, answer: object, expected: list[Any]) -> None:
    """The service must predict what the model predicts, or its figures mean nothing."""
    # ours answers "predictions"; the naive baseline (the seed's tutorial service) "prediction"
    got = answer.get("predictions", answer.get("prediction")) if isinstance(answer, dict) else None
    if got != expected:
        raise RuntimeError(f"{name} answered {answer!r}; expected prediction {expected!r}")


if __name__ == "__main__":
    sys.exit(main())
