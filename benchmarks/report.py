"""The ``make bench`` table and the performance issue's targets, from the figures of one run."""

from __future__ import annotations

from typing import Any

# Requests/s at 64 connections, ours / naive, per model kind.
THROUGHPUT_TARGETS = {"logistic": 5.0, "forest": 10.0}
WORKERS_SCALING_TARGET = 1.5  # req/s with 2 workers over 1, 8 connections, 2 CPUs
# Batch-scoring rows/s over the slower of in-process Parquet decode and in-process predict.
BATCH_SHARE_TARGET = 0.8


def batch_bound(figures: dict[str, Any]) -> float:
    """The slower of the two in-process bounds of batch scoring (decode, predict), rows/s."""
    bounds = [figures["in_process_rows_per_s"], figures.get("decode_rows_per_s")]
    return float(min(b for b in bounds if b))


MEMORY_GROWTH_TARGET = 1.5  # peak memory, largest over smallest input
# Rows/s of a 6 MB /invocations payload over pyarrow CSV parse + in-process predict.
PAYLOAD_SHARE_TARGET = 0.6
SERVICES = ("ours", "ours-capture", "ours-sklearn", "naive", "noop")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target that the figures allow to judge, with the measured value and margin."""
    out: list[dict[str, Any]] = []
    for kind, m in results["models"].items():
        http = m.get("http") or {}
        ours, naive = http.get("ours"), http.get("naive")
        if ours and naive:
            if kind in THROUGHPUT_TARGETS:
                ratio = ours["64"]["requests_per_s"] / naive["64"]["requests_per_s"]
                goal = THROUGHPUT_TARGETS[kind]
                out.append(
                    _target(
                        f"{kind}: req/s at 64 connections, ours/naive >= {goal:g}x",
                        f"{ratio:.1f}x",
                        ratio >= goal,
                        f"{ratio / goal:.2f} of the target",
                    )
                )
            p99, p50 = ours["8"]["p99_ms"], naive["8"]["p50_ms"]
            out.append(
                _target(
                    f"{kind}: p99 at 8 connections (ours) < p50 at 8 (naive)",
                    f"{p99:.2f} ms vs {p50:.2f} ms",
                    p99 < p50,
                    f"{p50 - p99:+.2f} ms",
                )
            )
        batch = m.get("batch") or {}
        for n, b in batch.items():
            share = b["rows_per_s"] / batch_bound(b)
            out.append(
                _target(
                    f"{kind}: batch scoring {int(n):,} rows >= {BATCH_SHARE_TARGET:.0%} of the "
                    "slower of in-process Parquet decode and predict "
                    f"({results['chunk_rows']:,}-row chunks)",
                    f"{share:.0%}",
                    share >= BATCH_SHARE_TARGET,
                    f"{(share - BATCH_SHARE_TARGET) * 100:+.0f} points",
                )
            )
        if len(batch) >= 2:
            sizes = sorted(batch, key=int)
            growth = batch[sizes[-1]]["peak_rss_mb"] / batch[sizes[0]]["peak_rss_mb"]
            out.append(
                _target(
                    f"{kind}: peak memory {int(sizes[-1]):,} rows <= {MEMORY_GROWTH_TARGET}x "
                    f"{int(sizes[0]):,} rows",
                    f"{growth:.2f}x",
                    growth <= MEMORY_GROWTH_TARGET,
                    f"{MEMORY_GROWTH_TARGET - growth:+.2f}x",
                )
            )
    scaling = results.get("workers_scaling")
    if scaling:
        ratio = scaling["ratio"]
        out.append(
            _target(
                f"{scaling['model']}: req/s at {scaling['connections']} connections, 2 workers "
                f">= {WORKERS_SCALING_TARGET:g}x 1 worker",
                f"{ratio:.2f}x",
                ratio >= WORKERS_SCALING_TARGET,
                f"{ratio / WORKERS_SCALING_TARGET:.2f} of the target",
            )
        )
    for kind, f in (results.get("payloads") or {}).items():
        shares = [
            ("CSV", "CSV", f["text/csv"] / f["reference"]),
            ("JSON Lines", "CSV", f["application/jsonlines"] / f["reference"]),
        ]
        if "records" in f:
            shares.append(("JSON Lines records", "JSON", f["records"] / f["records_reference"]))
        job = f.get("job")
        if job:
            at_once = f"at MaxConcurrentTransforms={job['concurrency']}"
            shares += [
                (f"CSV {at_once}", "CSV", job["text/csv"] / f["reference"]),
                (f"JSON Lines {at_once}", "CSV", job["application/jsonlines"] / f["reference"]),
                (f"JSON Lines records {at_once}", "JSON", job["records"] / f["records_reference"]),
            ]
        for name, parser, share in shares:
            out.append(
                _target(
                    f"{kind}: 6 MB {name} POST /invocations >= {PAYLOAD_SHARE_TARGET:.0%} of "
                    f"pyarrow {parser} parse + in-process predict",
                    f"{share:.0%}",
                    share >= PAYLOAD_SHARE_TARGET,
                    f"{(share - PAYLOAD_SHARE_TARGET) * 100:+.0f} points",
                )
            )
    return out


def capture_overhead(m: dict[str, Any]) -> str | None:
    """Capture on vs off, from the same run: req/s ratio and p99 per concurrency, and what was
    captured."""
    http = m.get("http") or {}
    on, off = http.get("ours-capture"), http.get("ours")
    if not on or not off:
        return None
    cells = ", ".join(
        f"{c}: {on[c]['requests_per_s'] / off[c]['requests_per_s']:.2f}x req/s, "
        f"p99 {off[c]['p99_ms']:.2f} -> {on[c]['p99_ms']:.2f} ms"
        for c in ("1", "8", "64")
    )
    text = f"capture on / off: {cells}"
    summary = m.get("capture")
    if summary:
        text += (
            f"; {summary['records']:,} records captured in {summary['files']} files "
            f"({summary['answered_in_cells']:,} answers counted by wrk), "
            f"{summary['dropped'] or 0:,.0f} dropped, {summary['incomplete_files']} incomplete"
        )
    return text


def _target(name: str, value: str, met: bool, margin: str) -> dict[str, Any]:
    return {"target": name, "value": value, "met": met, "margin": margin}


def render(results: dict[str, Any]) -> str:
    """The whole run as plain-text tables."""
    lines = [
        f"mlship bench, {results['started_at']}, {results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}, wrk {results['seconds_per_cell']:g} s per cell",
    ]
    if results["models"]:
        lines += _render_models(results)
    scaling = results.get("workers_scaling")
    if scaling:
        lines += [
            "",
            f"Workers: ours, {scaling['model']}, single-row POST /v1/predict, "
            f"{scaling['connections']} keep-alive connections (best of {scaling['rounds']})",
        ]
        for workers, cell in scaling["by_workers"].items():
            flag = " (errors!)" if cell["errors"] else ""
            lines.append(
                f"  {workers} worker{'s' if workers != '1' else ' '}: "
                f"{cell['requests_per_s']:>8,.0f} req/s, p50 {cell['p50_ms']:.2f} ms, "
                f"p99 {cell['p99_ms']:.2f} ms{flag}"
            )
        lines.append(f"  2 workers / 1 worker: {scaling['ratio']:.2f}x")
        for workers, runs in (scaling.get("all_runs_requests_per_s") or {}).items():
            shown = ", ".join(f"{r:,.0f}" for r in runs)
            lines.append(f"  every run, {workers} worker{'s' if workers != '1' else ''}: {shown}")
        noop = scaling.get("noop_by_workers") or {}
        if scaling.get("noop_ratio"):
            lines.append(
                f"  no-op ASGI app, same harness: 1 worker {noop['1']:,.0f}, 2 workers "
                f"{noop['2']:,.0f} req/s: {scaling['noop_ratio']:.2f}x (how far 2 workers scale "
                "at all with wrk on the same 2 cores)"
            )
    lines += ["", "Targets"]
    for t in results.get("targets", []):
        mark = "met   " if t["met"] else "MISSED"
        lines.append(f"  [{mark}] {t['target']}: {t['value']} ({t['margin']})")
    if "elapsed_s" in results:
        lines.append(f"\nbench took {results['elapsed_s']:.0f} s")
    return "\n".join(lines)


def _render_models(results: dict[str, Any]) -> list[str]:
    lines = ["", "Single-row POST /v1/predict (wrk; req/s, p50 ms, p99 ms)"]
    shown = [
        name
        for name in SERVICES
        if any((m.get("http") or {}).get(name) is not None for m in results["models"].values())
        or name in ("ours", "naive", "noop")
    ]
    header = f"{'model':<9}{'conns':>6} |" + "".join(
        f" {name + ' req/s':>17} {'p50':>7} {'p99':>7} |" for name in shown
    )
    lines += [header + "  ours/naive", "-" * (len(header) + 12)]
    for kind, m in results["models"].items():
        http = m.get("http")
        if not http:
            continue
        for c in ("1", "8", "64"):
            row = f"{kind:<9}{c:>6} |"
            for name in shown:
                cell = (http.get(name) or {}).get(c)
                if cell is None:
                    row += f" {'n/a':>17} {'':>7} {'':>7} |"
                    continue
                flag = "!" if cell["errors"] else ""
                row += (
                    f" {cell['requests_per_s']:>16,.0f}{flag:1} {cell['p50_ms']:>7.2f} "
                    f"{cell['p99_ms']:>7.2f} |"
                )
            ours, naive = (http.get("ours") or {}).get(c), (http.get("naive") or {}).get(c)
            if ours and naive:
                row += f"  {ours['requests_per_s'] / naive['requests_per_s']:>6.1f}x"
            lines.append(row)
    lines.append("(! = the run had errors or non-2xx answers; see the JSON)")
    for kind, m in results["models"].items():
        onnx = m.get("onnx") or {}
        if onnx.get("included"):
            note = f"model.onnx included (largest difference {onnx['max_abs_diff']:.2g})"
            sk, naive = (
                (m.get("http") or {}).get("ours-sklearn"),
                (m.get("http") or {}).get("naive"),
            )
            if sk and naive:
                ratios = ", ".join(
                    f"{c}: {sk[c]['requests_per_s'] / naive[c]['requests_per_s']:.1f}x"
                    for c in ("1", "8", "64")
                )
                note += f"; ours-sklearn/naive {ratios}"
        else:
            note = f"no ONNX: {onnx.get('reason', 'not exported')}"
        lines.append(f"  {kind}: {note}")
        capture = capture_overhead(m)
        if capture:
            lines.append(f"  {kind}: {capture}")
    lines.append("")

    lines.append("In-process Model.predict (rows/s) and batch scoring (mlship predict, Parquet)")
    for kind, m in results["models"].items():
        ip = m.get("in_process", {})
        lines.append(
            f"  {kind:<9} in-process  batch 1: {ip['batch_1']:,.0f}; "
            f"batch 256: {ip['batch_256']:,.0f}"
            + (
                f"; capture: {ip['capture_cpu_us']:.1f} CPU us per single-row prediction "
                f"(predict alone: {1e6 / ip['batch_1']:.1f} us)"
                if "capture_cpu_us" in ip
                else ""
            )
        )
        for n, b in (m.get("batch") or {}).items():
            ref = b["in_process_rows_per_s"]
            decode = b.get("decode_rows_per_s")
            lines.append(
                f"  {kind:<9} {int(n):>9,} rows: scoring ({b.get('runtime', 'sklearn')}) "
                f"{b['rows_per_s']:>10,.0f} rows/s; "
                f"in-process predict {ref:>10,.0f} rows/s in {results['chunk_rows']:,}-row "
                f"chunks ({b['rows_per_s'] / ref:.0%})"
                + (
                    f", Parquet decode {decode:>10,.0f} rows/s ({b['rows_per_s'] / decode:.0%})"
                    if decode
                    else ""
                )
                + (
                    f"; first pass in a fresh process {b['first_pass_rows_per_s']:,.0f} rows/s"
                    if b.get("first_pass_rows_per_s")
                    else ""
                )
                + f"; scoring peak RSS {b['peak_rss_mb']:,.0f} MB"
            )
    return lines
