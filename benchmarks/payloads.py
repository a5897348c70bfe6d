"""Batch Transform-sized payloads: ``POST /invocations`` with a full mini-batch, beside the
same bytes parsed by pyarrow's CSV reader and predicted in-process (issue 13's reference).

For a 30-feature and a 5-feature model, a 6 MB CSV body and the same rows as JSON Lines are
sent to ``mlship serve`` on 127.0.0.1 with the settings a transform job gives it (its defaults,
the prediction cache included: a mini-batch is larger than the cache answers, so every row
reaches the model: checked on ``/metrics``, no cache hit); rows/s is the
best of several requests, and so is the reference's. JSON Lines of records (an object per
line, as pandas writes them; fewer rows fit in 6 MB) are measured against their own
reference: the same bytes read by pyarrow's JSON reader, then predicted.

The service is measured twice: one request at a time to one worker (its latency, with the
answer written on both CPUs), and as a transform job drives it (many concurrent requests per
instance): ``MaxConcurrentTransforms`` connections at once, the number ``GET
/execution-parameters`` recommends, to the default server (a worker per CPU). The reference
parses on every CPU, as pyarrow does by default.

This machine's speed drifts by a fifth or more within minutes, so the references are not
timed once at the end: each request timed one at a time follows a run of its reference, and
the references run again after the job-shaped figures; each reference is the best of all its
runs (more runs than the service's figures get, so the share errs low rather than high).

Beside the one-at-a-time figures, the CPU time each request took in the service's processes
(from ``/proc``) and the reference's in its process: on N CPUs a request cannot take less than
its CPU time / N, which bounds the share however well its stages overlap.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.report import PAYLOAD_SHARE_TARGET
from benchmarks.scoring import include_onnx
from benchmarks.servers import Service, free_port, group_cpu_seconds, started
from core.model import load_model
from core.runtime import choose_runtime, cpus_available
from tests.factories import make_bundle

PAYLOAD_BYTES = 6 * 1000 * 1000
REPEATS = 7
# The job-shaped figure: requests per connection before timing, rounds, requests per round.
WARM_UP, ROUNDS, PER_ROUND = 3, 3, 3


def _body(rows: np.ndarray) -> tuple[bytes, bytes, np.ndarray]:
    """The rows as a 6 MB CSV body (six significant digits), the same rows as JSON Lines of
    lists, and those rows as parsed."""
    buffer = io.StringIO()
    np.savetxt(buffer, rows, fmt="%.6g", delimiter=",")
    csv = buffer.getvalue().encode()
    csv = csv[: csv.rfind(b"\n", 0, PAYLOAD_BYTES) + 1]  # whole lines, at most 6 MB
    parsed = np.loadtxt(io.BytesIO(csv), delimiter=",", ndmin=2)
    jsonl = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in parsed.tolist())
    return csv, jsonl, parsed


def _records(rows: np.ndarray, names: list[str]) -> bytes:
    """The rows as pandas' records lines, whole lines up to 6 MB."""
    import pandas as pd

    text = pd.DataFrame(rows, columns=names).to_json(orient="records", lines=True).encode()
    return text[: text.rfind(b"\n", 0, PAYLOAD_BYTES) + 1]


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """The wall-clock time of one run of ``fn``, and its CPU time in this process (all its
    threads included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _seconds(fn: Callable[[], None]) -> float:
    return _timed(fn)[0]


def _best(fn: Callable[[], None], reference: Callable[[], None], ref_times: list[float]) -> float:
    """The best of ``REPEATS`` runs of ``fn``, each after a run of ``reference`` whose time
    goes to ``ref_times``: the two are timed over the same minutes."""
    times = []
    for _ in range(REPEATS):
        ref_times.append(_seconds(reference))
        times.append(_seconds(fn))
    return min(times)


@contextlib.contextmanager
def _serving(bundle: Path, log: Path, workers: int | None) -> Iterator[tuple[int, int]]:
    """``mlship serve`` on 127.0.0.1 (``workers=None``: its default); yields its port and its
    process group (the server and its workers)."""
    port = free_port()
    argv = [sys.executable, "-m", "cli", "serve", "--model", str(bundle), "--host",
            "127.0.0.1", "--port", str(port)]  # fmt: skip
    if workers is not None:
        argv += ["--workers", str(workers)]
    # The body limit a transform job with MaxPayloadInMB=8 sets (JSON Lines is larger).
    env = {"MLSHIP_ACCESS_LOG": "false", "MLSHIP_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
    with started(Service("ours", argv, "/ping", env), port, log) as proc:
        yield port, proc.pid


def _poster(port: int, body: bytes, media: str) -> Callable[[], None]:
    """A function that POSTs ``body`` to /invocations on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post() -> None:
        connection.request("POST", "/invocations", body, {"Content-Type": media, "Accept": media})
        response = connection.getresponse()
        answer = response.read()
        assert response.status == 200, answer[:300]

    return post


def _check_no_cache_hits(port: int) -> None:
    """Raise unless the service answered every row with the model: the bodies repeat, so a
    cache that looked them up would answer them from memory."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    rows = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("mlship_prediction_cache_")
    }
    if rows.get("mlship_prediction_cache_hits_total", 0.0) or not rows.get(
        "mlship_prediction_cache_skipped_rows_total"
    ):
        raise RuntimeError(f"the prediction cache did not skip every payload row: {rows}")


def _concurrent_rate(port: int, body: bytes, media: str, rows: int, streams: int) -> float:
    """Rows/s of ``streams`` connections each POSTing ``body`` in turn: the best of
    ``ROUNDS`` rounds of ``PER_ROUND`` requests per connection, after a warm-up that starts
    every worker."""
    posts = [_poster(port, body, media) for _ in range(streams)]
    start = threading.Barrier(streams, timeout=120)
    spans: list[list[float]] = [[] for _ in range(streams)]

    def stream(k: int) -> None:
        try:
            for _ in range(WARM_UP):
                posts[k]()
            for _ in range(ROUNDS):
                start.wait()
                began = time.perf_counter()
                for _ in range(PER_ROUND):
                    posts[k]()
                spans[k] += [began, time.perf_counter()]
        except BaseException:
            start.abort()  # the other streams stop waiting for this one
            raise

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(stream, range(streams)))
    seconds = min(
        max(s[2 * r + 1] for s in spans) - min(s[2 * r] for s in spans) for r in range(ROUNDS)
    )
    return streams * PER_ROUND * rows / seconds


def bench_payloads(work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("logistic", "narrow"):
        print(f"   payloads {kind}", file=sys.stderr, flush=True)
        bundle = make_bundle(work / f"payload-{kind}", kind)
        base = np.load(work / f"payload-{kind}-test_X.npy")
        # As `mlship train` leaves it: a parity-checked model.onnx, which the service serves by
        # default; the in-process reference predicts with that same runtime.
        include_onnx(bundle, base)
        model = choose_runtime(load_model(bundle, estimator=False), "auto", "reference").model
        rng = np.random.default_rng(3)
        rows = base[rng.integers(0, len(base), 200_000)] * rng.uniform(0.95, 1.05, (200_000, 1))
        csv, jsonl, parsed = _body(rows)
        n = csv.count(b"\n")
        records = _records(parsed, model.feature_names)
        n_records = records.count(b"\n")

        def reference(csv: bytes = csv, model: Any = model) -> None:
            table = pacsv.read_csv(
                pa.py_buffer(csv), read_options=pacsv.ReadOptions(autogenerate_column_names=True)
            )
            X = np.column_stack([c.to_numpy() for c in table.columns])
            model.predict(X)

        types = pa.schema([(name, pa.float64()) for name in model.feature_names])

        def records_reference(
            body: bytes = records, model: Any = model, types: pa.Schema = types
        ) -> None:
            options = pajson.ParseOptions(explicit_schema=types)
            table = pajson.read_json(pa.BufferReader(pa.py_buffer(body)), parse_options=options)
            X = np.column_stack([c.to_numpy() for c in table.columns])
            model.predict(X)

        figures: dict[str, Any] = {"rows": n, "bytes": len(csv), "runtime": model.runtime}
        figures["records_rows"] = n_records
        ref_times: list[float] = []
        records_ref_times: list[float] = []
        sends = (
            ("text/csv", "text/csv", csv, n, reference, ref_times),
            ("application/jsonlines", "application/jsonlines", jsonl, n, reference, ref_times),
            ("records", "application/jsonlines", records, n_records, records_reference,
             records_ref_times),
        )  # fmt: skip
        cpu: dict[str, float] = {}  # CPU seconds per request, the service's and the references'
        with _serving(bundle, work / f"payload-{kind}.log", workers=1) as (port, group):
            for figure, media, body, lines, ref, times in sends:
                post = _poster(port, body, media)
                post()  # warm-up
                before = group_cpu_seconds(group)
                figures[figure] = lines / _best(post, ref, times)
                after = group_cpu_seconds(group)
                if before is not None and after is not None:
                    cpu[figure] = (after - before) / REPEATS
            _check_no_cache_hits(port)
        # As a transform job drives the container: MaxConcurrentTransforms requests at once
        # (GET /execution-parameters) to the default server, a worker per CPU.
        job: dict[str, Any] = {}
        with _serving(bundle, work / f"payload-{kind}-job.log", workers=None) as (port, _):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/execution-parameters")
            job["concurrency"] = json.loads(connection.getresponse().read())[
                "MaxConcurrentTransforms"
            ]
            connection.close()
            for figure, media, body, lines, _, _ in sends:
                job[figure] = _concurrent_rate(port, body, media, lines, job["concurrency"])
            _check_no_cache_hits(port)
        job["workers"] = cpus_available()
        figures["job"] = job
        ref_cpu: list[float] = []
        records_ref_cpu: list[float] = []
        for _ in range(REPEATS):  # the references again, after the job-shaped figures
            for run, walls, cpus in (
                (reference, ref_times, ref_cpu),
                (records_reference, records_ref_times, records_ref_cpu),
            ):
                wall, cpu_seconds = _timed(run)
                walls.append(wall)
                cpus.append(cpu_seconds)
        if cpu:
            cpu |= {"reference": min(ref_cpu), "records_reference": min(records_ref_cpu)}
            figures["cpu"] = cpu
            figures["cpus"] = cpus_available()
        figures["reference"] = n / min(ref_times)
        figures["records_reference"] = n_records / min(records_ref_times)
        figures["reference_runs"] = len(ref_times)
        out[kind] = figures
    return out


def render_payloads(figures: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Batch Transform payload: one 6 MB POST /invocations (rows/s), beside pyarrow CSV "
        "parse + in-process predict",
        f"{'model':<10}{'runtime':>8}{'rows':>9} {'CSV':>12} {'JSON Lines':>12} {'reference':>12}  "
        f"CSV/ref  JSONL/ref (target >= {PAYLOAD_SHARE_TARGET:.0%})",
    ]
    for kind, f in figures.items():
        ref = f["reference"]
        csv, jl = f["text/csv"], f["application/jsonlines"]
        lines.append(
            f"{kind:<10}{f.get('runtime', 'sklearn'):>8}{f['rows']:>9,} {csv:>12,.0f} {jl:>12,.0f} "
            f"{ref:>12,.0f}  "
            f"{csv / ref:>6.0%}  {jl / ref:>8.0%}"
        )
    lines += _render_cpu(figures)
    jobs = {kind: f["job"] for kind, f in figures.items() if "job" in f}
    if jobs:
        lines += [
            "The same payloads as a transform job sends them: MaxConcurrentTransforms requests "
            "at once (GET /execution-parameters) to the default server (a worker per CPU)",
            f"{'model':<10}{'workers':>8}{'at once':>9} {'CSV':>12} {'JSON Lines':>12} "
            f"{'records':>12}  CSV/ref  JSONL/ref  records/ref",
        ]
        for kind, job in jobs.items():
            f = figures[kind]
            csv, jl, rec = job["text/csv"], job["application/jsonlines"], job["records"]
            lines.append(
                f"{kind:<10}{job['workers']:>8}{job['concurrency']:>9} {csv:>12,.0f} {jl:>12,.0f} "
                f"{rec:>12,.0f}  {csv / f['reference']:>6.0%}  "
                f"{jl / f['reference']:>8.0%}  {rec / f['records_reference']:>10.0%}"
            )
    if any("records" in f for f in figures.values()):
        lines += [
            "JSON Lines of records (an object per line), beside pyarrow JSON parse + predict",
            f"{'model':<10}{'rows':>17} {'records':>12} {'reference':>12}  records/ref",
        ]
        for kind, f in figures.items():
            if "records" in f:
                rec, ref = f["records"], f["records_reference"]
                lines.append(
                    f"{kind:<10}{f['records_rows']:>17,} {rec:>12,.0f} {ref:>12,.0f}  "
                    f"{rec / ref:>10.0%}"
                )
    return lines


def _render_cpu(figures: dict[str, Any]) -> list[str]:
    """The CPU time behind each one-at-a-time figure, and the share it leaves possible: on N
    CPUs a request takes at least its CPU time / N, however well its work overlaps."""
    measured = {kind: f for kind, f in figures.items() if "cpu" in f}
    if not measured:
        return []
    lines = [
        "CPU per request, one at a time (ms): the service's processes beside the reference's "
        "process; 'at most' is the share the service's CPU time allows on every CPU",
        f"{'model':<10}{'CPUs':>6} {'CSV':>8} {'JSONL':>8} {'records':>8} {'reference':>10} "
        f"{'rec. ref':>9}  at most CSV/ref  JSONL/ref  records/rec. ref",
    ]
    for kind, f in measured.items():
        cpu, cpus = f["cpu"], f["cpus"]
        reference_seconds = f["rows"] / f["reference"]
        records_reference_seconds = f["records_rows"] / f["records_reference"]
        csv, jl, records = cpu["text/csv"], cpu["application/jsonlines"], cpu["records"]
        lines.append(
            f"{kind:<10}{cpus:>6} {csv * 1e3:>8.1f} {jl * 1e3:>8.1f} "
            f"{records * 1e3:>8.1f} {cpu['reference'] * 1e3:>10.1f} "
            f"{cpu['records_reference'] * 1e3:>9.1f}  "
            f"{reference_seconds * cpus / csv:>15.0%}  {reference_seconds * cpus / jl:>9.0%}  "
            f"{records_reference_seconds * cpus / records:>16.0%}"
        )
    return lines
