"""Handler of ``mlship predict``: score a file in batch with a bundle."""

from __future__ import annotations

import argparse
import sys


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def predict(args: argparse.Namespace) -> int:
    """``mlship predict``: score ``--input`` with the model at ``--model`` into ``--output``."""
    from core.memory import keep_large_blocks
    from core.model import load_model
    from core.runtime import choose_runtime, cpus_available
    from core.sources import local_bundle
    from pipelines.batch import score_file

    keep_large_blocks()  # 100k-row chunks reuse their memory
    # A downloaded bundle lives in a temporary directory removed when scoring ends.
    with local_bundle(args.model, what="--model") as path:
        bundle = load_model(path, estimator=False)
        # One large call at a time: onnxruntime may use every CPU (the service: one a worker).
        chosen = choose_runtime(bundle, args.runtime, "--runtime", threads=cpus_available())
        if chosen.fallback is not None:
            _to_stderr(f"scoring with scikit-learn: {chosen.fallback}")
        result = score_file(
            chosen.model,
            args.input,
            args.output,
            chunk_rows=args.chunk_rows,
            id_column=args.id_column,
            progress=_to_stderr,
        )
    print(
        f"scored {result.rows:,} rows in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s, {chosen.model.runtime}) -> {result.output}",
        file=sys.stderr,
    )
    return 0
