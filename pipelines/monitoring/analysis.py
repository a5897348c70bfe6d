"""The report's figures, computed from captured rows, the bundle's manifest and labels.

Everything here is plain numbers (a JSON-ready dict), so the HTML report and the JSON written
beside it carry the same values, and a test can recompute each one directly:

- drift: per feature, the live histogram on the reference bins and its PSI
  (:class:`core.drift.ReferenceBins`, the definition the service's ``/metrics`` uses);
- data quality: missing values and values below the training minimum or above its maximum;
- predictions: their distribution, and over time (rows, class shares or value quantiles);
- labels (optional): ``inference_id,label[,row]`` joined with the captured rows, and the
  metrics training reports (``pipelines.evaluate.prediction_metrics``) on the joined rows.
"""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.drift import MIN_ROWS_FOR_PSI, PSI_MODERATE, PSI_SIGNIFICANT, ReferenceBins
from core.errors import DataError
from core.manifest import Manifest
from core.s3 import download, is_s3_uri
from pipelines.evaluate import prediction_metrics
from pipelines.monitoring.capture import Captured

SCHEMA = "mlship-report/1"
# Time buckets of the timeline: the smallest giving at most MAX_BUCKETS buckets.
BUCKET_SECONDS = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 48
LABEL_COLUMNS = ("inference_id", "label")


@dataclass(frozen=True)
class Labels:
    """Labels read from a CSV file: by (inference id, row in the request, or None)."""

    source: str
    values: dict[tuple[str, int | None], Any]
    rows: int


def read_labels(source: str, manifest: Manifest) -> Labels:
    """Read ``inference_id,label`` (and optionally ``row``, the row's position in a
    multi-row request) from a CSV file, local or ``s3://``.

    Raises:
        DataError: naming the file, the line and the problem.
    """
    if is_s3_uri(source):
        with tempfile.TemporaryDirectory(prefix="mlship-labels-") as tmp:
            return _read_labels(download(source, Path(tmp) / "labels.csv"), source, manifest)
    return _read_labels(Path(source), source, manifest)


def _read_labels(path: Path, source: str, manifest: Manifest) -> Labels:
    if not path.is_file():
        raise DataError(f"--labels {source}: no such file.")
    classes = manifest.target.classes
    values: dict[tuple[str, int | None], Any] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"--labels {source}: no {missing[0]!r} column. Write a CSV with a header "
                "inference_id,label (and row for requests of several rows)."
            )
        for line, record in enumerate(reader, start=2):
            key = (record["inference_id"], _row(record.get("row"), source, line))
            values[key] = _label(record["label"], classes, source, line)
    return Labels(source=source, values=values, rows=len(values))


def _row(value: str | None, source: str, line: int) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise DataError(f"--labels {source}, line {line}: row {value!r} is not a number.") from None


def _label(value: str, classes: list[Any] | None, source: str, line: int) -> Any:
    if classes:
        for c in classes:
            if str(c) == value.strip():
                return c
        raise DataError(
            f"--labels {source}, line {line}: label {value[:40]!r} is not a class of the model "
            f"({', '.join(str(c) for c in classes[:10])})."
        )
    try:
        return float(value)
    except ValueError:
        raise DataError(
            f"--labels {source}, line {line}: label {value[:40]!r} is not a number."
        ) from None


def analyse(
    manifest: Manifest, captured: Captured, source: str, labels: Labels | None = None
) -> dict[str, Any]:
    """Every figure of the report, as a JSON-ready dict (NaN as None)."""
    reference = ReferenceBins(manifest)
    profile = reference.profile(captured.X)
    psi = reference.psi(profile.counts, profile.rows)
    times = captured.times
    joined = _join(captured, labels) if labels is not None else None
    out = {
        "schema": SCHEMA,
        "generated_at": _iso(datetime.now(UTC).timestamp()),
        "model": {
            "name": manifest.name,
            "version": manifest.version,
            "task": manifest.task,
            "classes": manifest.target.classes,
            "training_metrics": manifest.metrics,
        },
        "capture": {
            "source": source,
            "files": captured.files,
            "records": captured.records,
            "rows": captured.rows,
            "skipped": captured.skipped,
            "first": _iso(float(times.min())),
            "last": _iso(float(times.max())),
        },
        "drift": _drift(reference, profile.counts, psi),
        "quality": _quality(manifest, captured.X, profile.missing, profile.out_of_range),
        "predictions": _predictions(manifest, captured, joined),
        "labels": None
        if joined is None or labels is None
        else _labelled(manifest, captured, labels, joined),
    }
    cleaned: dict[str, Any] = _clean(out)
    return cleaned


# -- drift and quality ----------------------------------------------------------------------


def _drift(reference: ReferenceBins, counts: np.ndarray, psi: np.ndarray) -> dict[str, Any]:
    features = []
    for j, name in enumerate(reference.names):
        edges = reference.edges[j]
        width = int(reference.widths[j])
        live = counts[j, :width]
        values = float(live.sum())
        value = float(psi[j])
        features.append(
            {
                "name": name,
                "tracked": edges is not None,
                "psi": value,
                "status": _status(value),
                "values": values,
                "bin_edges": None if edges is None else edges.tolist(),
                "reference": reference.expected[j, :width].tolist() if edges is not None else None,
                "live": (live / values).tolist() if edges is not None and values else None,
                "counts": live.tolist() if edges is not None else None,
            }
        )
    return {
        "thresholds": {"moderate": PSI_MODERATE, "significant": PSI_SIGNIFICANT},
        "min_rows": MIN_ROWS_FOR_PSI,
        "features": features,
    }


def _status(psi: float) -> str:
    if math.isnan(psi):
        return "n/a"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if psi >= PSI_MODERATE else "stable"


def _quality(
    manifest: Manifest, X: np.ndarray, missing: np.ndarray, outside: np.ndarray
) -> dict[str, Any]:
    rows = X.shape[0]
    features = []
    for j, f in enumerate(manifest.features):
        col = X[:, j]
        below = int((col < f.min).sum()) if f.min is not None else 0
        above = int((col > f.max).sum()) if f.max is not None else 0
        features.append(
            {
                "name": f.name,
                "nullable": f.nullable,
                "min": f.min,
                "max": f.max,
                "missing": int(missing[j]),
                "missing_rate": float(missing[j]) / rows,
                "out_of_range": int(outside[j]),
                "below_min": below,
                "above_max": above,
                "out_of_range_rate": float(outside[j]) / rows,
            }
        )
    return {"rows": rows, "features": features}


# -- predictions over time ------------------------------------------------------------------


def _predictions(manifest: Manifest, captured: Captured, joined: _Joined | None) -> dict[str, Any]:
    classes = manifest.target.classes
    preds = captured.predictions
    times = captured.times
    start, end = float(times.min()), float(times.max())
    step = next((s for s in BUCKET_SECONDS if (end - start) / s < MAX_BUCKETS), BUCKET_SECONDS[-1])
    origin = math.floor(start / step) * step
    bucket = ((times - origin) // step).astype(np.int64)
    buckets = []
    for b in np.unique(bucket).tolist():
        sel = bucket == b
        entry: dict[str, Any] = {"start": _iso(origin + b * step), "rows": int(sel.sum())}
        if classes:
            entry["shares"] = {str(c): float(np.mean(preds[sel] == c)) for c in classes}
        else:
            entry["quantiles"] = _quantiles(preds[sel].astype(np.float64))
        if joined is not None:
            labelled = sel & joined.matched
            entry["labelled"] = int(labelled.sum())
            if labelled.any():
                truth = joined.truth[labelled]
                if classes:
                    entry["accuracy"] = float(np.mean(preds[labelled] == truth))
                else:
                    diff = preds[labelled].astype(np.float64) - truth.astype(np.float64)
                    entry["mae"] = float(np.mean(np.abs(diff)))
        buckets.append(entry)
    out: dict[str, Any] = {"bucket_seconds": step, "timeline": buckets}
    if classes:
        out["counts"] = {str(c): int(np.sum(preds == c)) for c in classes}
        if captured.probabilities is not None:
            out["mean_probability"] = {
                str(c): float(m)
                for c, m in zip(classes, captured.probabilities.mean(axis=0), strict=True)
            }
    else:
        values = preds.astype(np.float64)
        counts, edges = np.histogram(values, bins=20)
        out["mean"] = float(values.mean())
        out["std"] = float(values.std())
        out["quantiles"] = _quantiles(values)
        out["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return out


def _quantiles(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return dict(zip(("p05", "p25", "p50", "p75", "p95"), qs.tolist(), strict=True))


# -- labels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Joined:
    matched: np.ndarray  # bool per captured row
    truth: np.ndarray  # the label of each matched row (a placeholder elsewhere)
    unused: int  # label lines that match no captured row
    without_row: int  # rows of multi-row requests whose label has no row number


def _join(captured: Captured, labels: Labels) -> _Joined:
    """Each captured row's label: by (inference id, row) or, for a single-row request, by
    inference id alone."""
    n = captured.rows
    matched = np.zeros(n, dtype=bool)
    truth: list[Any] = [None] * n
    used: set[tuple[str, int | None]] = set()
    without_row = 0
    for i in range(n):
        rid = captured.inference_ids[i]
        key: tuple[str, int | None] = (rid, int(captured.positions[i]))
        if key not in labels.values and captured.request_rows[i] == 1:
            key = (rid, None)
        if key in labels.values:
            matched[i] = True
            truth[i] = labels.values[key]
            used.add(key)
        elif (rid, None) in labels.values:
            without_row += 1
    placeholder = next((t for t in truth if t is not None), 0)
    filled = np.array([placeholder if t is None else t for t in truth])
    return _Joined(matched, filled, labels.rows - len(used), without_row)


def _labelled(
    manifest: Manifest, captured: Captured, labels: Labels, joined: _Joined
) -> dict[str, Any]:
    """Live metrics on the captured rows that have a label, the training metrics beside."""
    sel = joined.matched
    metrics = None
    if sel.any():
        proba = captured.probabilities[sel] if captured.probabilities is not None else None
        metrics = prediction_metrics(
            joined.truth[sel],
            captured.predictions[sel],
            proba,
            manifest.target.classes,
            manifest.task,
        )
    return {
        "source": labels.source,
        "labels": labels.rows,
        "matched_rows": int(sel.sum()),
        "unused_labels": joined.unused,
        "rows_needing_a_row_number": joined.without_row,
        "metrics": metrics,
        "training_metrics": manifest.metrics,
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither), numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
