"""``mlship report``: captured predictions + the bundle (+ labels) -> one HTML file and its JSON."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.bundle import load_bundle
from core.sources import local_bundle
from pipelines.monitoring.analysis import analyse, read_labels
from pipelines.monitoring.capture import read_capture
from pipelines.monitoring.render import render_html


@dataclass(frozen=True)
class Report:
    """Where the report was written, and its figures."""

    html: Path
    json: Path
    data: dict[str, Any]


def write_report(capture: str, model: str, out: Path, labels: str | None = None) -> Report:
    """Write the monitoring report of the captured predictions of ``model``.

    Args:
        capture: Capture files: a directory (``MLSHIP_CAPTURE_DIR``, searched recursively for
            ``*.jsonl``), one file, or an ``s3://bucket/prefix`` (an endpoint's data capture).
        model: The bundle that served them: a directory, ``model.tar.gz``, ``s3://`` or
            ``models:/name@alias`` (its manifest holds the training reference).
        out: The HTML file to write; the figures go to the same name with ``.json``.
        labels: Optional CSV of ``inference_id,label[,row]``, local or ``s3://``.

    Returns:
        The paths written and the figures.

    Raises:
        ModelLoadError: when the bundle cannot be resolved or verified.
        CaptureError: when the capture holds no usable record.
        DataError: when the labels file cannot be read.
    """
    with local_bundle(model, what="--model") as path:  # a download is removed afterwards
        manifest = load_bundle(path, estimator=False).manifest
    captured = read_capture(capture, manifest)
    label_set = read_labels(labels, manifest) if labels else None
    data = analyse(manifest, captured, capture, label_set)
    page = render_html(data)
    json_path = out.with_suffix(".json")
    _write_atomically(out, page)
    _write_atomically(json_path, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return Report(html=out, json=json_path, data=data)


def _write_atomically(path: Path, text: str) -> None:
    """Write beside, then rename: a reader never sees half a report. Created with the usual
    permissions (the umask's), unlike mkstemp's owner-only ones: a report is for sharing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
