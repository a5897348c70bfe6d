"""Handler of ``mlship serve`` (and the container's ``serve``): settings once, then run."""

from __future__ import annotations

import argparse


def serve(args: argparse.Namespace) -> int:
    """``mlship serve``: run the service until SIGTERM/SIGINT; returns the exit code."""
    from app.serve import load_settings
    from app.serve import serve as run

    settings = load_settings(
        model_uri=args.model, host=args.host, port=args.port, workers=args.workers
    )
    return run(settings)
