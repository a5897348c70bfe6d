"""Batch-scoring and in-process figures: rows/s, and peak memory of a scoring process.

``python -m benchmarks.scoring BUNDLE INPUT OUTPUT CHUNK PASSES`` scores one file with
:func:`pipelines.batch.score_file` ``PASSES`` times in a fresh process and prints each pass's
rows/s and the peak RSS as JSON. The first pass also pays for the process's first touch of
its buffers (page faults: 14 us each on this virtual machine, 20,000 of them for 1 M rows of
30 features); the later passes reuse them, as the decode reference's best of 3 runs in one
process does. Each pass writes a new file, as a scheduled run writes to a new dated prefix:
replacing the last pass's output would add its deletion (about 10 ms for the 23 MB of 1 M
rows on this disk) to a figure whose reference writes nothing. The peak is the kernel's
``VmHWM`` of that process (no psutil): ``ru_maxrss`` would not do, since Linux carries the
parent's resident size at fork over into the child's figure.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.model import Model, load_model
from pipelines.onnx_export import OnnxExportError, add_onnx

GEN_CHUNK = 100_000


@dataclass(frozen=True)
class ScoringResult:
    rows: int
    rows_per_s: float  # the best pass
    peak_rss_mb: float
    runtime: str = "sklearn"
    first_pass_rows_per_s: float = 0.0  # in a fresh process

    def to_json(self) -> dict[str, float | int | str]:
        return asdict(self)


def generate_parquet(path: Path, model: Model, base: np.ndarray, rows: int, seed: int = 0) -> Path:
    """``rows`` rows near the test split (each value scaled by ~N(1, 0.02)), with an id column.

    Written in row groups of 100,000 rows, as Spark, pandas and pyarrow write by default.
    """
    rng = np.random.default_rng(seed)
    names = model.feature_names
    schema = pa.schema([("id", pa.int64())] + [(n, pa.float64()) for n in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GEN_CHUNK):
            n = min(GEN_CHUNK, rows - start)
            X = base[rng.integers(0, len(base), n)] * rng.normal(1.0, 0.02, (n, base.shape[1]))
            columns = {"id": np.arange(start, start + n)} | {
                c: X[:, j] for j, c in enumerate(names)
            }
            writer.write_table(pa.table(columns, schema=schema), row_group_size=GEN_CHUNK)
    return path


def read_matrix(path: Path, model: Model) -> np.ndarray:
    """The whole file's features as a C-ordered float64 matrix (the in-process reference)."""
    table = pq.read_table(path, columns=model.feature_names)
    return np.column_stack([table.column(n).to_numpy() for n in model.feature_names])


def include_onnx(bundle: Path, test_X: np.ndarray) -> dict[str, Any]:
    """Export the model to ONNX into the bundle, as a release would, if it passes parity."""
    try:
        parity = add_onnx(bundle, test_X)
    except OnnxExportError as e:
        return {"included": False, "reason": str(e)}
    return {"included": True, "max_abs_diff": parity.max_abs_diff}


def scoring_model(bundle: Path) -> Model:
    """The model `mlship predict` scores with by default: the bundle's model.onnx when it has
    one, on every CPU (else scikit-learn)."""
    from core.runtime import choose_runtime, cpus_available

    chosen = choose_runtime(
        load_model(bundle, estimator=False), "auto", "--runtime", cpus_available()
    )
    return chosen.model


def decode_rows_per_s(path: Path, model: Model) -> float:
    """Rows/s of decoding the file's features in-process (:func:`read_matrix`), the other
    bound of batch scoring beside ``predict``."""
    start = time.perf_counter()
    X = read_matrix(path, model)
    return float(X.shape[0] / (time.perf_counter() - start))


def in_process_rows_per_s(model: Model, X: np.ndarray, batch: int, min_seconds: float) -> float:
    """Rows/s of ``model.predict`` on ``batch``-row slices of ``X`` (at least ``min_seconds``)."""
    n_slices = max(1, X.shape[0] // batch)
    rows = 0
    start = time.perf_counter()
    i = 0
    while True:
        s = (i % n_slices) * batch
        model.predict(X[s : s + batch])
        rows += min(batch, X.shape[0] - s)
        i += 1
        elapsed = time.perf_counter() - start
        if (elapsed >= min_seconds and i >= n_slices) or elapsed >= 10 * min_seconds:
            return float(rows / elapsed)


def score_in_child(
    bundle: Path, src: Path, dst: Path, chunk_rows: int, passes: int = 2
) -> ScoringResult:
    """Score ``src`` ``passes`` times in a fresh process; the best pass's and the first pass's
    rows/s, and the peak RSS, as that process measured them."""
    argv = [sys.executable, "-m", "benchmarks.scoring", str(bundle), str(src), str(dst)]
    done = subprocess.run(
        [*argv, str(chunk_rows), str(passes)], check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout)
    rates = [float(r) for r in result["rows_per_s"]]
    return ScoringResult(
        rows=int(result["rows"]),
        rows_per_s=max(rates),
        peak_rss_mb=float(result["peak_rss_mb"]),
        runtime=str(result.get("runtime", "sklearn")),
        first_pass_rows_per_s=rates[0],
    )


def peak_rss_mb() -> float:
    """This process's peak resident set size since it started (``VmHWM``), in MiB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: best effort


def _child(argv: list[str]) -> None:
    from core.memory import keep_large_blocks
    from pipelines.batch import score_file

    keep_large_blocks()  # as `mlship predict` does

    bundle, src, dst, chunk, passes = argv
    model = scoring_model(Path(bundle))
    # pyarrow imports pandas (when installed) on its first conversion: a one-time start-up
    # cost like the model load (0.7 s here), paid before the clock starts, as the in-process
    # references in the parent have paid it too.
    pa.array([0.0]).to_numpy()
    results = []
    for _ in range(int(passes)):
        Path(dst).unlink(missing_ok=True)  # a new file each pass (see the module docstring)
        results.append(score_file(model, src, dst, chunk_rows=int(chunk)))
    print(
        json.dumps(
            {
                "rows": results[0].rows,
                "rows_per_s": [r.rows_per_second for r in results],
                "peak_rss_mb": peak_rss_mb(),
                "runtime": model.runtime,
            }
        )
    )


if __name__ == "__main__":
    _child(sys.argv[1:])
