"""The report as one self-contained HTML file: inline CSS, charts as inline SVG (matplotlib),
no script to run and nothing fetched, so it opens offline, in a mail attachment or an S3
console preview. The figures it shows are embedded once more as JSON
(``<script type="application/json" id="mlship-report-data">``) for tools and tests.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
import re
from typing import Any

STATUS_COLOURS = {
    "stable": "#3b8c3b",
    "moderate": "#d89a00",
    "significant": "#c62828",
    "n/a": "#9e9e9e",
}
REFERENCE_COLOUR = "#9fb3c8"
LIVE_COLOUR = "#1f5f99"
DATA_ELEMENT_ID = "mlship-report-data"
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #1c2733; background: #f6f8fa; }
header { background: #1c2733; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d4df; }
nav { padding: 8px 32px; background: #e9eef3; }
nav a { margin-right: 18px; color: #1f5f99; text-decoration: none; }
main { padding: 8px 32px 32px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; margin: 16px 0;
          padding: 12px 20px 20px; }
h2 { font-size: 18px; margin: 8px 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { flex: 1 1 180px; border: 1px solid #dde3ea; border-radius: 6px; padding: 10px 14px; }
.card b { display: block; font-size: 22px; }
.card span { color: #52606d; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e4e8ed; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f1f4f7; }
.status { color: #fff; border-radius: 3px; padding: 0 6px; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 8px; }
figure.chart { margin: 0; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #52606d; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.pair figure.chart { flex: 1 1 520px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: #33404d; }
.note { color: #52606d; font-size: 13px; }
"""


def render_html(data: dict[str, Any]) -> str:
    """The report page for the figures of :func:`pipelines.monitoring.analysis.analyse`."""
    import matplotlib

    with matplotlib.rc_context({"font.size": 8, "svg.fonttype": "none"}):
        return _page(data)


def _page(data: dict[str, Any]) -> str:
    model = data["model"]
    capture = data["capture"]
    title = f"Monitoring report: {model['name']} {model['version']}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{capture['rows']:,} rows in "
        f"{capture['records']:,} requests, {_e(capture['first'])} to {_e(capture['last'])}, "
        f"from {_e(capture['source'])} ({capture['files']} files). Generated "
        f"{_e(data['generated_at'])}.</p></header>",
        '<nav><a href="#summary">Summary</a><a href="#drift">Input drift</a>'
        '<a href="#predictions">Predictions</a><a href="#labels">Live quality</a>'
        '<a href="#quality">Data quality</a><a href="#histograms">Histograms</a></nav><main>',
        _summary(data),
        _drift(data),
        _predictions(data),
        _labels(data),
        _quality(data),
        _histograms(data),
        "</main>",
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{_json(data)}</script>',
        "</body></html>",
    ]
    return "\n".join(parts)


# -- sections -------------------------------------------------------------------------------


def _summary(data: dict[str, Any]) -> str:
    drift = data["drift"]["features"]
    significant = sum(f["status"] == "significant" for f in drift)
    moderate = sum(f["status"] == "moderate" for f in drift)
    quality = data["quality"]
    rows = quality["rows"]
    out_rows = sum(f["out_of_range"] for f in quality["features"])
    missing = sum(f["missing"] for f in quality["features"])
    cards = [
        (f"{significant}", f"features with significant drift (PSI ≥ "
         f"{data['drift']['thresholds']['significant']})"),
        (f"{moderate}", "features with moderate drift"),
        (f"{out_rows:,}", f"values outside the training range ({out_rows / rows:.2%} of rows)"),
        (f"{missing:,}", "missing values"),
    ]  # fmt: skip
    labels = data["labels"]
    if labels and labels["metrics"]:
        key = "accuracy" if "accuracy" in labels["metrics"] else "rmse"
        live = labels["metrics"][key]
        trained = labels["training_metrics"].get(key)
        versus = f" (training {_num(trained)})" if trained is not None else ""
        cards.append(
            (_num(live), f"live {key} on {labels['matched_rows']:,} labelled rows{versus}")
        )
    skipped = sum(data["capture"]["skipped"].values())
    if skipped:
        cards.append((f"{skipped:,}", "capture records skipped (see below)"))
    body = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(t)}</span></div>' for v, t in cards)
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{body}</div></section>'


def _drift(data: dict[str, Any]) -> str:
    drift = data["drift"]
    features = drift["features"]
    ordered = sorted(features, key=lambda f: -1.0 if f["psi"] is None else -f["psi"])
    rows = "".join(
        f"<tr><td>{_e(f['name'])}</td><td>{_num(f['psi'])}</td><td>{_badge(f['status'])}</td>"
        f"<td>{f['values']:,.0f}</td></tr>"
        for f in ordered
    )
    return (
        '<section id="drift"><h2>Input drift</h2>'
        f'<p class="note">Population Stability Index of the served values against the '
        f"training histogram of each feature (the same definition as the service's "
        f"<code>mlship_feature_drift_psi</code>): below {drift['thresholds']['moderate']} "
        f"stable, from {drift['thresholds']['significant']} significant drift. Needs "
        f"{drift['min_rows']} rows.</p>"
        + '<div class="pair">'
        + _figure("psi", _psi_chart(ordered), "PSI per feature (dashed: 0.1 and 0.25)")
        + "<table><tr><th>feature</th><th>PSI</th><th>status</th><th>values</th></tr>"
        + rows
        + "</table></div>"
        + '<p class="note"><a href="#histograms">Histograms per feature</a> below.</p></section>'
    )


def _histograms(data: dict[str, Any]) -> str:
    charts = "".join(
        _figure(f"hist-{f['name']}", _histogram_chart(f), "")
        for f in data["drift"]["features"]
        if f["tracked"] and f["live"] is not None
    )
    return (
        '<section id="histograms"><h2>Histograms per feature</h2><p class="note">Share of '
        "values per training bin, training vs served (bins of about equal training share, "
        f'marked by their lower edge).</p><div class="grid">{charts}</div></section>'
    )


def _quality(data: dict[str, Any]) -> str:
    quality = data["quality"]
    rows = "".join(
        f"<tr><td>{_e(f['name'])}</td><td>{f['missing']:,}</td><td>{f['missing_rate']:.2%}</td>"
        f"<td>{f['below_min']:,}</td><td>{f['above_max']:,}</td>"
        f"<td>{f['out_of_range_rate']:.2%}</td><td>{_num(f['min'])}</td><td>{_num(f['max'])}</td>"
        "</tr>"
        for f in quality["features"]
    )
    skipped = data["capture"]["skipped"]
    skipped_rows = "".join(
        f"<tr><td>{_e(reason)}</td><td>{n:,}</td></tr>" for reason, n in skipped.items()
    )
    skipped_table = (
        "<h3>Skipped capture records</h3><table><tr><th>reason</th><th>records</th></tr>"
        f"{skipped_rows}</table>"
        if skipped
        else ""
    )
    return (
        '<section id="quality"><h2>Data quality</h2>'
        f'<p class="note">Of {quality["rows"]:,} served rows: missing values, and values '
        "below the training minimum or above its maximum.</p>"
        + _figure("quality", _quality_chart(quality["features"]), "Missing and out-of-range")
        + "<table><tr><th>feature</th><th>missing</th><th>missing %</th><th>below min</th>"
        "<th>above max</th><th>out of range %</th><th>training min</th><th>training max</th>"
        f"</tr>{rows}</table>{skipped_table}</section>"
    )


def _predictions(data: dict[str, Any]) -> str:
    predictions = data["predictions"]
    return (
        '<section id="predictions"><h2>Predictions</h2>'
        + _figure(
            "timeline",
            _timeline_chart(predictions, data["model"]["classes"]),
            f"Predictions over time, per {_duration(predictions['bucket_seconds'])}",
        )
        + _figure(
            "distribution",
            _distribution_chart(predictions, data["model"]["classes"]),
            "Distribution of the predictions",
        )
        + "</section>"
    )


def _labels(data: dict[str, Any]) -> str:
    labels = data["labels"]
    if labels is None:
        return (
            '<section id="labels"><h2>Live quality</h2><p class="note">No labels given. '
            "Pass <code>--labels FILE</code> (CSV: <code>inference_id,label</code>, and "
            "<code>row</code> for requests of several rows) once the outcomes are known: the "
            "capture's inferenceId is the request's X-Request-Id.</p></section>"
        )
    metrics = labels["metrics"] or {}
    training = labels["training_metrics"]
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_num(v)}</td><td>{_num(training.get(k))}</td></tr>"
        for k, v in metrics.items()
    )
    chart = ""
    timeline = data["predictions"]["timeline"]
    if any("accuracy" in b or "mae" in b for b in timeline):
        chart = _figure(
            "live-quality",
            _live_chart(data["predictions"]),
            f"Live quality over time, per {_duration(data['predictions']['bucket_seconds'])}",
        )
    return (
        '<section id="labels"><h2>Live quality</h2>'
        f'<p class="note">{labels["matched_rows"]:,} captured rows joined with '
        f"{labels['labels']:,} labels from {_e(labels['source'])} by inference id; "
        f"{labels['unused_labels']:,} labels match no captured row"
        + (
            f", {labels['rows_needing_a_row_number']:,} rows of multi-row requests need a "
            "<code>row</code> column"
            if labels["rows_needing_a_row_number"]
            else ""
        )
        + ".</p><table><tr><th>metric</th><th>live</th><th>training</th></tr>"
        + rows
        + "</table>"
        + chart
        + "</section>"
    )


# -- charts ---------------------------------------------------------------------------------


def _svg(fig: Any, key: str) -> str:
    """A figure as inline SVG markup (text kept as text, ids unique per chart)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": key}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    # Inline: no XML prolog, and no RDF metadata block (creator, format: bytes for nothing).
    return _METADATA.sub("", text[text.index("<svg") :], count=1)


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _psi_chart(features: list[dict[str, Any]]) -> str:
    fig = _new_figure(7.5, max(1.5, 0.19 * len(features) + 0.6))
    ax = fig.add_subplot()
    names = [f["name"] for f in features][::-1]
    values = [0.0 if f["psi"] is None else f["psi"] for f in features][::-1]
    colours = [STATUS_COLOURS[f["status"]] for f in features][::-1]
    ax.barh(names, values, color=colours)
    for level in (0.1, 0.25):
        ax.axvline(level, color="#555", linewidth=0.8, linestyle="--")
    ax.set_xlabel("PSI")
    ax.tick_params(labelsize=7)
    ax.margins(y=0.01)
    return _svg(fig, "psi")


def _histogram_chart(feature: dict[str, Any]) -> str:
    fig = _new_figure(3.4, 2.1)
    ax = fig.add_subplot()
    n = len(feature["reference"])
    x = list(range(n))
    ax.bar([i - 0.2 for i in x], feature["reference"], width=0.4, color=REFERENCE_COLOUR,
           label="training")  # fmt: skip
    ax.bar([i + 0.2 for i in x], feature["live"], width=0.4, color=LIVE_COLOUR, label="served")
    edges = feature["bin_edges"]
    ax.set_xticks(x, [_bin_label(edges, i) for i in x], rotation=60, fontsize=6)
    ax.set_title(f"{feature['name']}  PSI {_num(feature['psi'])}", fontsize=8,
                 color=STATUS_COLOURS[feature["status"]])  # fmt: skip
    ax.tick_params(axis="y", labelsize=6)
    ax.legend(fontsize=6, frameon=False)
    return _svg(fig, f"hist-{feature['name']}")


def _quality_chart(features: list[dict[str, Any]]) -> str:
    fig = _new_figure(7.5, 2.4)
    ax = fig.add_subplot()
    x = list(range(len(features)))
    ax.bar([i - 0.2 for i in x], [100 * f["missing_rate"] for f in features], width=0.4,
           color="#8e6cc2", label="missing %")  # fmt: skip
    ax.bar([i + 0.2 for i in x], [100 * f["out_of_range_rate"] for f in features], width=0.4,
           color="#c62828", label="out of range %")  # fmt: skip
    ax.set_xticks(x, [f["name"] for f in features], rotation=75, fontsize=6)
    ax.set_ylabel("% of rows")
    ax.legend(fontsize=7, frameon=False)
    return _svg(fig, "quality")


def _timeline_chart(predictions: dict[str, Any], classes: list[Any] | None) -> str:
    buckets = predictions["timeline"]
    fig = _new_figure(7.5, 2.6)
    ax = fig.add_subplot()
    x = list(range(len(buckets)))
    if classes:
        bottom = [0.0] * len(buckets)
        for c in classes:
            shares = [b["shares"][str(c)] for b in buckets]
            ax.bar(x, shares, bottom=bottom, label=f"class {c}", width=0.8)
            bottom = [a + s for a, s in zip(bottom, shares, strict=True)]
        ax.set_ylabel("share of predictions")
        ax.set_ylim(0, 1)
    else:
        q = [b["quantiles"] for b in buckets]
        ax.fill_between(x, [v["p05"] for v in q], [v["p95"] for v in q], alpha=0.2,
                        color=LIVE_COLOUR, label="p5-p95")  # fmt: skip
        ax.fill_between(x, [v["p25"] for v in q], [v["p75"] for v in q], alpha=0.35,
                        color=LIVE_COLOUR, label="p25-p75")  # fmt: skip
        ax.plot(x, [v["p50"] for v in q], color=LIVE_COLOUR, label="median")
        ax.set_ylabel("predicted value")
    rows = ax.twinx()
    rows.plot(x, [b["rows"] for b in buckets], color="#333", marker="o", markersize=2,
              linewidth=1, label="rows")  # fmt: skip
    rows.set_ylabel("rows")
    rows.set_ylim(bottom=0)
    step = max(1, len(buckets) // 12)
    ax.set_xticks(x[::step], _ticks(predictions)[::step], rotation=30, fontsize=6)
    ax.legend(fontsize=6, frameon=False, loc="upper left")
    return _svg(fig, "timeline")


def _distribution_chart(predictions: dict[str, Any], classes: list[Any] | None) -> str:
    fig = _new_figure(4.5, 2.4)
    ax = fig.add_subplot()
    if classes:
        counts = predictions["counts"]
        ax.bar([str(c) for c in classes], [counts[str(c)] for c in classes], color=LIVE_COLOUR)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("rows")
    else:
        hist = predictions["histogram"]
        edges = hist["edges"]
        widths = [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(edges[:-1], hist["counts"], width=widths, align="edge", color=LIVE_COLOUR)
        ax.set_xlabel("predicted value")
        ax.set_ylabel("rows")
    return _svg(fig, "distribution")


def _live_chart(predictions: dict[str, Any]) -> str:
    timeline = predictions["timeline"]
    fig = _new_figure(7.5, 2.2)
    ax = fig.add_subplot()
    key = "accuracy" if any("accuracy" in b for b in timeline) else "mae"
    points = [(i, b[key]) for i, b in enumerate(timeline) if key in b]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=LIVE_COLOUR)
    ax.set_ylabel(key)
    step = max(1, len(timeline) // 12)
    ax.set_xticks(list(range(len(timeline)))[::step], _ticks(predictions)[::step], rotation=30,
                  fontsize=6)  # fmt: skip
    return _svg(fig, "live")


# -- helpers --------------------------------------------------------------------------------


def _figure(key: str, svg: str, caption: str) -> str:
    text = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart" data-chart="{_e(key)}">{svg}{text}</figure>'


def _badge(status: str) -> str:
    return f'<span class="status" style="background:{STATUS_COLOURS[status]}">{_e(status)}</span>'


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(str(value))


def _ticks(predictions: dict[str, Any]) -> list[str]:
    """Bucket starts as axis labels: down to the second for buckets under a minute."""
    starts = [b["start"] for b in predictions["timeline"]]  # 2026-11-30T14:06:18Z
    if predictions["bucket_seconds"] < 60:
        return [t[11:19] for t in starts]
    return [t[5:16].replace("T", " ") for t in starts]


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}"
    return f"{seconds:g} s"


def _bin_label(edges: list[float], i: int) -> str:
    """A bin by its lower edge; a bin just above a value that has a bin of its own
    (``[v, next float)``: ``pipelines.profile.histogram``) as ``>v``."""
    if i > 0 and edges[i] == math.nextafter(edges[i - 1], math.inf):
        return f">{_short(edges[i - 1])}"
    return _short(edges[i])


def _short(value: float) -> str:
    return f"{value:.3g}"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _json(data: dict[str, Any]) -> str:
    # No "<" at all in script data ("</script>" or "<!--" would end or confuse the element);
    # "\u003c" is the same JSON string.
    return json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
