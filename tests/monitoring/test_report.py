"""``mlship report``: the figures in the report equal a direct computation on the captured rows
(numpy and scikit-learn, sharing no code with the report), for a capture written by the service
and for a capture file written by hand in SageMaker Data Capture's documented format."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics

from app.main import create_app
from app.settings import AppSettings
from cli.main import main as mlship
from core.bundle import read_manifest
from core.manifest import Manifest
from core.model import load_model
from tests.monitoring.direct import direct_psi_all, direct_quality

FIXTURE = Path(__file__).with_name("fixtures") / "sagemaker-capture.jsonl"
DATA_BLOCK = re.compile(
    r'<script type="application/json" id="mlship-report-data">(.*?)</script>', re.S
)


def run_report(capture: str, bundle: Path, out: Path, labels: str | None = None) -> dict[str, Any]:
    """Run ``mlship report``; the figures embedded in the HTML, checked equal to the JSON."""
    argv = ["report", "--capture", capture, "--model", str(bundle), "--out", str(out)]
    if labels is not None:
        argv += ["--labels", labels]
    assert mlship(argv) == 0
    page = out.read_text()
    match = DATA_BLOCK.search(page)
    assert match is not None
    embedded: dict[str, Any] = json.loads(match.group(1))
    assert embedded == json.loads(out.with_suffix(".json").read_text())
    # Self-contained: nothing to fetch (namespace names in xmlns="http://..." are no fetch).
    assert not re.search(r'(?:src|href)="(?!#)', page)
    return embedded


def _direct_bins(X: np.ndarray, manifest: Manifest) -> dict[str, list[float]]:
    """Values per reference bin (outside values in the outer bins, missing left out)."""
    out = {}
    for j, name in enumerate(manifest.feature_names):
        edges = np.asarray(manifest.reference[name].bin_edges)
        col = X[~np.isnan(X[:, j]), j]
        out[name] = np.histogram(np.clip(col, edges[0], edges[-1]), bins=edges)[0].tolist()
    return out


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def _json_rows(rows: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def test_report_on_the_service_capture_equals_a_direct_computation(
    nullable_bundle: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(nullable_bundle)
    model = load_model(nullable_bundle)
    test_X = np.load(nullable_bundle.parent / "nullable-test_X.npy")
    test_y = np.load(nullable_bundle.parent / "nullable-test_y.npy")
    area = manifest.feature_names.index("mean_area")
    singles = test_X[:100]
    batches = test_X[100:140] * 1.2  # shifted: drift
    outside = test_X[:20].copy()
    outside[:, area] = 1e9
    capture = tmp_path / "capture"
    settings = AppSettings(model_uri=str(nullable_bundle), capture_dir=capture)
    with TestClient(create_app(settings)) as client:
        for i, row in enumerate(singles):
            body = {"features": _json_rows(row[None])[0]}
            r = client.post("/v1/predict", json=body, headers={"X-Request-Id": f"s-{i}"})
            assert r.status_code == 200
        for k in range(10):
            rows = batches[4 * k : 4 * k + 4]
            csv = "\n".join(
                ",".join("" if np.isnan(v) else repr(float(v)) for v in r) for r in rows
            )
            r = client.post(
                "/invocations",
                content=csv,
                headers={"Content-Type": "text/csv", "X-Request-Id": f"b-{k}"},
            )
            assert r.status_code == 200, r.text
        for i, row in enumerate(outside):
            body = {"features": _json_rows(row[None])[0]}
            r = client.post("/v1/predict", json=body, headers={"X-Request-Id": f"o-{i}"})
            assert r.status_code == 200
        assert client.post("/v1/predict", json={"features": [1.0]}).status_code == 422
    sent = np.concatenate([singles, batches, outside])
    labels = tmp_path / "labels.csv"
    lines = ["inference_id,label,row"]
    lines += [f"s-{i},{test_y[i]}," for i in range(80)]
    lines += [f"b-{k},{test_y[100 + 4 * k + r]},{r}" for k in range(5) for r in range(4)]
    lines += ["b-5,1,", "never-sent,0,"]  # a multi-row request without row; an unknown id
    labels.write_text("\n".join(lines) + "\n")

    data = run_report(str(capture), nullable_bundle, tmp_path / "report.html", str(labels))

    assert data["capture"]["rows"] == sent.shape[0] == 160
    assert data["capture"]["records"] == 130
    assert data["capture"]["skipped"] == {}
    drift = _by_name(data["drift"]["features"])
    psi = direct_psi_all(sent, manifest)
    bins = _direct_bins(sent, manifest)
    for name in manifest.feature_names:
        assert drift[name]["psi"] == pytest.approx(psi[name], rel=1e-12), name
        assert drift[name]["counts"] == bins[name], name
        assert drift[name]["reference"] == manifest.reference[name].frequencies
        level = "significant" if psi[name] >= 0.25 else "moderate" if psi[name] >= 0.1 else "stable"
        assert drift[name]["status"] == level, name
    assert any(f["status"] == "significant" for f in drift.values())  # the shifted batches
    missing, out_of_range = direct_quality(sent, manifest)
    quality = _by_name(data["quality"]["features"])
    assert missing["mean_texture"] > 0
    for j, f in enumerate(manifest.features):
        assert quality[f.name]["missing"] == missing[f.name]
        assert quality[f.name]["out_of_range"] == out_of_range[f.name]
        assert quality[f.name]["above_max"] == int((sent[:, j] > f.max).sum())
    predicted = model.predict(sent)
    assert data["predictions"]["counts"] == {
        str(c): int((predicted.labels == c).sum()) for c in (0, 1)
    }
    # Live quality: the 100 labelled rows, scored directly with scikit-learn.
    joined = np.concatenate([singles[:80], batches[:20]])
    y = np.concatenate([test_y[:80], test_y[100:120]])
    p = model.predict(joined)
    assert p.probabilities is not None
    live = data["labels"]
    assert (live["matched_rows"], live["unused_labels"]) == (100, 2)
    assert live["rows_needing_a_row_number"] == 4
    assert live["metrics"]["accuracy"] == pytest.approx(metrics.accuracy_score(y, p.labels))
    assert live["metrics"]["f1"] == pytest.approx(metrics.f1_score(y, p.labels, pos_label=1))
    assert live["metrics"]["roc_auc"] == pytest.approx(
        metrics.roc_auc_score(y, p.probabilities[:, 1])
    )
    page = (tmp_path / "report.html").read_text()
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"><svg', page)
    assert len(charts) == 1 + len(psi) + 4  # PSI, one histogram per feature, quality,
    assert {"psi", "quality", "timeline", "distribution", "live-quality"} <= set(charts)


FIXTURE_ROWS = np.array(
    [  # the rows of the usable records of the fixture, in inference-time order
        [5.1, 3.5, 1.4, 0.2],  # order-1001 09:15:04 (CSV)
        [6.4, 3.2, 4.5, 1.5],  # order-1002 09:47:51 (CSV, 3 rows)
        [6.9, 3.1, 4.9, 1.5],
        [5.5, 2.3, 4.0, 1.3],
        [6.3, 3.3, 6.0, 2.5],  # order-1003 10:02:13 (JSON, 2 rows)
        [5.8, 2.7, 5.1, 1.9],
        [7.7, 2.6, 9.9, 2.3],  # eventId …04 11:30:00 (BASE64 JSON, no inferenceId)
        [4.9, 3.0, 1.4, 0.2],  # order-1007 12:05:40 (CSV)
    ]
)
FIXTURE_PREDICTIONS = [0, 1, 1, 1, 2, 2, 2, 0]
FIXTURE_PROBABILITIES = np.array(
    [
        [0.97, 0.03, 0.0],
        [0.01, 0.86, 0.13],
        [0.0, 0.7, 0.3],
        [0.02, 0.9, 0.08],
        [0.0, 0.02, 0.98],
        [0.0, 0.21, 0.79],
        [0.0, 0.0, 1.0],
        [0.95, 0.05, 0.0],
    ]
)
FIXTURE_LABELS = """inference_id,label,row
order-1001,0,
order-1002,1,0
order-1002,2,1
order-1002,1,2
order-1003,2,0
order-1003,2,1
6d5f5c28-8c1c-4d5e-9f3e-0a1b2c3d4e04,2,
order-1007,0,
order-9999,1,
"""
FIXTURE_TRUTH = [0, 1, 2, 1, 2, 2, 2, 0]


def _assert_fixture_report(data: dict[str, Any], manifest: Manifest) -> None:
    assert data["capture"]["records"] == 5
    assert data["capture"]["rows"] == 8
    assert data["capture"]["skipped"] == {
        "CSV input rows do not have one value per feature": 1,
        "answered by another model version (test-iris-old)": 1,
    }
    assert (data["capture"]["first"], data["capture"]["last"]) == (
        "2026-11-02T09:15:04Z",
        "2026-11-02T12:05:40Z",
    )
    drift = _by_name(data["drift"]["features"])
    bins = _direct_bins(FIXTURE_ROWS, manifest)
    for name in manifest.feature_names:
        assert drift[name]["counts"] == bins[name]
        assert drift[name]["psi"] is None  # 8 rows: below the 100 a PSI needs
        assert drift[name]["status"] == "n/a"
    _, out_of_range = direct_quality(FIXTURE_ROWS, manifest)
    quality = _by_name(data["quality"]["features"])
    assert out_of_range["petal_length_(cm)"] == 1
    assert {n: q["out_of_range"] for n, q in quality.items()} == out_of_range
    predictions = data["predictions"]
    assert predictions["counts"] == {"0": 2, "1": 3, "2": 3}
    assert predictions["mean_probability"] == pytest.approx(
        dict(zip(("0", "1", "2"), FIXTURE_PROBABILITIES.mean(axis=0).tolist(), strict=True))
    )
    # 09:15:04 to 12:05:40 is 34 five-minute buckets (under 48); 5 of them hold requests.
    assert predictions["bucket_seconds"] == 300
    assert [(b["start"][11:16], b["rows"]) for b in predictions["timeline"]] == [
        ("09:15", 1),
        ("09:45", 3),
        ("10:00", 2),
        ("11:30", 1),
        ("12:05", 1),
    ]
    live = data["labels"]
    assert (live["matched_rows"], live["unused_labels"]) == (8, 1)
    y, pred = FIXTURE_TRUTH, FIXTURE_PREDICTIONS
    assert live["metrics"] == pytest.approx(
        {
            "accuracy": metrics.accuracy_score(y, pred),
            "f1": metrics.f1_score(y, pred, average="macro"),
            "roc_auc": metrics.roc_auc_score(
                y, FIXTURE_PROBABILITIES, multi_class="ovr", labels=[0, 1, 2]
            ),
        }
    )


def test_report_on_a_sagemaker_capture_file_written_by_hand(
    iris_bundle: Path, tmp_path: Path
) -> None:
    # SageMaker's layout: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    folder = tmp_path / "capture" / "iris-prod" / "AllTraffic" / "2026" / "11" / "02" / "09"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE, folder / "15-04-123-6d5f5c28.jsonl")
    labels = tmp_path / "labels.csv"
    labels.write_text(FIXTURE_LABELS)

    data = run_report(str(tmp_path / "capture"), iris_bundle, tmp_path / "r.html", str(labels))

    _assert_fixture_report(data, read_manifest(iris_bundle))


def test_report_reads_the_capture_from_s3(aws: str, iris_bundle: Path, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mlship-dev")
    key = "capture/iris-prod/AllTraffic/2026/11/02/09/15-04-123-6d5f5c28.jsonl"
    s3.put_object(Bucket="mlship-dev", Key=key, Body=FIXTURE.read_bytes())
    s3.put_object(Bucket="mlship-dev", Key="capture/iris-prod/notes.txt", Body=b"not capture")
    s3.put_object(Bucket="mlship-dev", Key="labels.csv", Body=FIXTURE_LABELS.encode())

    data = run_report(
        "s3://mlship-dev/capture/iris-prod/",
        iris_bundle,
        tmp_path / "r.html",
        "s3://mlship-dev/labels.csv",
    )

    _assert_fixture_report(data, read_manifest(iris_bundle))
    assert data["capture"]["files"] == 1


def test_report_without_capture_files_says_where_it_looked(
    iris_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    argv = ["report", "--capture", str(tmp_path / "empty"), "--model", str(iris_bundle)]

    assert mlship([*argv, "--out", str(tmp_path / "r.html")]) == 1

    assert "No capture files (*.jsonl) under" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_report_labels_without_a_label_column_are_refused(
    iris_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,outcome\norder-1001,0\n")
    argv = ["report", "--capture", str(FIXTURE), "--model", str(iris_bundle)]

    assert mlship([*argv, "--labels", str(labels), "--out", str(tmp_path / "r.html")]) == 1

    assert "no 'label' column" in capsys.readouterr().err


def test_report_labels_must_be_classes_of_the_model(
    iris_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("inference_id,label\norder-1001,setosa\n")
    argv = ["report", "--capture", str(FIXTURE), "--model", str(iris_bundle)]

    assert mlship([*argv, "--labels", str(labels), "--out", str(tmp_path / "r.html")]) == 1

    assert "line 2: label 'setosa' is not a class of the model (0, 1, 2)" in capsys.readouterr().err


def test_report_of_a_regressor_scores_values_against_labels(
    regression_bundle: Path, regression_X: np.ndarray, tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    model = load_model(regression_bundle)
    data = load_diabetes()
    _, X, _, y = train_test_split(data.data, data.target, test_size=0.25, random_state=0)
    np.testing.assert_array_equal(X, regression_X)  # the split make_bundle held out
    capture = tmp_path / "capture"
    settings = AppSettings(model_uri=str(regression_bundle), capture_dir=capture)
    with TestClient(create_app(settings)) as client:
        for i in range(0, len(X), 3):  # requests of 3 rows
            body = {"instances": X[i : i + 3].tolist()}
            r = client.post("/v1/predict", json=body, headers={"X-Request-Id": f"r-{i}"})
            assert r.status_code == 200
    labels = tmp_path / "labels.csv"
    rows = ["inference_id,label,row"]
    rows += [f"r-{i - i % 3},{float(y[i])!r},{i % 3}" for i in range(len(X))]
    labels.write_text("\n".join(rows) + "\n")

    data_ = run_report(str(capture), regression_bundle, tmp_path / "r.html", str(labels))

    predicted = model.predict(X).labels
    predictions = data_["predictions"]
    assert predictions["mean"] == pytest.approx(float(np.mean(predicted)))
    assert predictions["quantiles"]["p50"] == pytest.approx(float(np.median(predicted)))
    assert predictions["histogram"]["counts"] == np.histogram(predicted, bins=20)[0].tolist()
    live = data_["labels"]
    assert live["matched_rows"] == len(X)
    assert live["metrics"] == pytest.approx(
        {
            "rmse": float(np.sqrt(np.mean((predicted - y) ** 2))),
            "mae": float(np.mean(np.abs(predicted - y))),
            "r2": metrics.r2_score(y, predicted),
        }
    )
    assert all("mae" in b for b in predictions["timeline"])


def test_report_of_text_features_reads_back_the_codes_the_model_saw(
    penguins_bundle: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from core.features import FeatureSchema, category_codes

    model = load_model(penguins_bundle)
    manifest = model.manifest
    frame = pd.read_csv(penguins_bundle.parent / "penguins.csv")
    sample = frame.sample(n=120, random_state=3).reset_index(drop=True)
    sample.loc[:9, "island"] = "Atlantis"  # never seen in training
    names = manifest.feature_names
    rows = [[None if pd.isna(v) else v for v in r] for r in sample[names].itertuples(index=False)]
    capture = tmp_path / "capture"
    settings = AppSettings(model_uri=str(penguins_bundle), capture_dir=capture)
    with TestClient(create_app(settings)) as client:
        for i, row in enumerate(rows):
            r = client.post(
                "/v1/predict", json={"features": row}, headers={"X-Request-Id": f"p{i}"}
            )
            assert r.status_code == 200, r.text
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "inference_id,label\n" + "".join(f"p{i},{s}\n" for i, s in enumerate(sample["species"]))
    )

    data = run_report(str(capture), penguins_bundle, tmp_path / "r.html", str(labels))

    assert data["capture"]["skipped"] == {}
    assert data["capture"]["rows"] == len(rows)
    X = FeatureSchema(manifest).rows_to_matrix(rows)  # the codes the service saw
    island = next(f for f in manifest.features if f.name == "island")
    codes = category_codes(sample["island"].to_numpy(dtype=object), island)
    k = len(island.categories or [])
    drift = _by_name(data["drift"]["features"])
    assert drift["island"]["counts"] == np.bincount(codes.astype(int), minlength=k + 1).tolist()
    assert drift["island"]["counts"][k] == 10  # Atlantis: the 'other' code
    bins = _direct_bins(X, manifest)
    assert {n: d["counts"] for n, d in drift.items()} == bins
    quality = _by_name(data["quality"]["features"])
    assert quality["sex"]["missing"] == int(sample["sex"].isna().sum()) > 0
    predicted = model.predict(X).labels
    assert data["predictions"]["counts"] == {
        c: int((predicted == c).sum()) for c in ["Adelie", "Chinstrap", "Gentoo"]
    }
    truth = sample["species"].tolist()
    assert data["labels"]["metrics"]["accuracy"] == pytest.approx(
        metrics.accuracy_score(truth, predicted)
    )


def _sagemaker_record(i: int, media: str, body: str | bytes, answer: str | bytes) -> str:
    """A Data Capture record as SageMaker writes one for an exchange with an endpoint: a
    binary body (a type its capture configuration lists neither as CSV nor as JSON) as
    BASE64."""

    def payload(data: str | bytes, mode: str) -> dict[str, str]:
        if isinstance(data, bytes):
            encoding, data = "BASE64", base64.b64encode(data).decode()
        else:
            encoding = "CSV" if media == "text/csv" else "JSON"
        return {"observedContentType": media, "encoding": encoding, "data": data, "mode": mode}

    return json.dumps(
        {
            "captureData": {
                "endpointInput": payload(body, "INPUT"),
                "endpointOutput": payload(answer, "OUTPUT"),
            },
            "eventMetadata": {"eventId": f"e-{i}", "inferenceTime": f"2026-11-02T10:0{i}:00Z"},
            "eventVersion": "0",
        }
    )


def test_report_reads_sagemaker_captured_numpy_exchanges(iris_bundle: Path, tmp_path: Path) -> None:
    """The SageMaker SDK's SKLearnPredictor sends .npy and asks for .npy (NumpySerializer,
    NumpyDeserializer); Data Capture keeps both bodies as BASE64. The report reads them as the
    service does (core/npy.py): a 2-D array of rows, or a 1-D array as one row."""
    rows = FIXTURE_ROWS[:5]
    exchanges: list[tuple[bytes, bytes]] = []
    npy = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    with TestClient(create_app(AppSettings(model_uri=str(iris_bundle)))) as client:
        for batch in (rows[:3], rows[3], rows[4:]):
            sent = io.BytesIO()
            np.save(sent, batch)
            r = client.post("/invocations", content=sent.getvalue(), headers=npy)
            assert r.status_code == 200, r.text
            exchanges.append((sent.getvalue(), r.content))
    capture = tmp_path / "capture.jsonl"
    capture.write_text(
        "".join(
            _sagemaker_record(i, "application/x-npy", *e) + "\n" for i, e in enumerate(exchanges)
        )
    )

    data = run_report(str(capture), iris_bundle, tmp_path / "r.html")

    assert data["capture"]["skipped"] == {}
    assert (data["capture"]["records"], data["capture"]["rows"]) == (3, 5)
    predicted = load_model(iris_bundle).predict(rows).labels
    assert data["predictions"]["counts"] == {str(c): int((predicted == c).sum()) for c in (0, 1, 2)}


def test_report_reads_sagemaker_captured_csv_with_text_features_and_text_labels(
    penguins_bundle: Path, tmp_path: Path
) -> None:
    """CSV in and out of the real service for a model with text features (island, sex with
    gaps) and text labels: the CSV rows are read with the service's own rules (a category's
    code, NA as missing, a leading byte order mark dropped: the first mini-batch of a file
    saved by a Windows tool), and the CSV answers as CSV (RFC 4180: a writer that quotes
    every field, such as pandas' QUOTE_ALL, is read alike)."""
    import csv
    import io

    import pandas as pd

    from core.features import FeatureSchema, category_codes

    model = load_model(penguins_bundle)
    names = model.manifest.feature_names
    frame = pd.read_csv(penguins_bundle.parent / "penguins.csv")
    sample = frame.sample(n=40, random_state=5).reset_index(drop=True)
    batches = [sample[names].iloc[k : k + 10] for k in range(0, 40, 10)]
    exchanges: list[tuple[str, str]] = []
    with TestClient(create_app(AppSettings(model_uri=str(penguins_bundle)))) as client:
        for batch in batches:
            body = batch.to_csv(header=False, index=False, na_rep="NA")
            if not exchanges:
                body = "\ufeff" + body
            r = client.post(
                "/invocations",
                content=body,
                headers={"Content-Type": "text/csv", "Accept": "text/csv"},
            )
            assert r.status_code == 200, r.text
            exchanges.append((body, r.text))
    # the last answer as a writer that quotes every field would send it
    rows = list(csv.reader(io.StringIO(exchanges[-1][1])))
    quoted = io.StringIO()
    csv.writer(quoted, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    exchanges[-1] = (exchanges[-1][0], quoted.getvalue())
    capture = tmp_path / "capture.jsonl"
    capture.write_text(
        "".join(_sagemaker_record(i, "text/csv", *e) + "\n" for i, e in enumerate(exchanges))
    )

    data = run_report(str(capture), penguins_bundle, tmp_path / "r.html")

    assert data["capture"]["skipped"] == {}
    assert (data["capture"]["records"], data["capture"]["rows"]) == (4, 40)
    X = FeatureSchema(model.manifest).rows_to_matrix(
        [[None if pd.isna(v) else v for v in r] for r in sample[names].itertuples(index=False)]
    )
    predicted = model.predict(X).labels
    assert data["predictions"]["counts"] == {
        c: int((predicted == c).sum()) for c in ["Adelie", "Chinstrap", "Gentoo"]
    }
    quality = _by_name(data["quality"]["features"])
    assert quality["sex"]["missing"] == int(sample["sex"].isna().sum()) > 0
    island = next(f for f in model.manifest.features if f.name == "island")
    codes = category_codes(sample["island"].to_numpy(dtype=object), island)
    k = len(island.categories or [])
    drift = _by_name(data["drift"]["features"])
    assert drift["island"]["counts"] == np.bincount(codes.astype(int), minlength=k + 1).tolist()
    assert drift["island"]["counts"][k] == 0  # no row read as an unseen island


def test_report_reads_true_false_answers_of_a_true_false_target(
    flags_bundle: Path, tmp_path: Path
) -> None:
    """A model whose target is a True/False column answers ``true``/``false`` in CSV and
    true/false in JSON; the report reads both as its classes, and the rows' True/False
    cells as the service does."""
    from core.features import FeatureSchema
    from pipelines.profile import encode
    from tests.factories import flags_table

    model = load_model(flags_bundle)
    frame = flags_table(rows=30, seed=7)[model.feature_names]
    exchanges: list[tuple[str, str, str]] = []
    with TestClient(create_app(AppSettings(model_uri=str(flags_bundle)))) as client:
        for k, media in enumerate(["text/csv", "application/json", "text/csv"]):
            batch = frame.iloc[k * 10 : k * 10 + 10]
            if media == "text/csv":
                body = batch.to_csv(header=False, index=False)
            else:
                body = json.dumps({"instances": json.loads(batch.to_json(orient="values"))})
            headers = {"Content-Type": media, "Accept": media}
            r = client.post("/invocations", content=body, headers=headers)
            assert r.status_code == 200, r.text
            exchanges.append((media, body, r.text))
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(_sagemaker_record(i, *e) + "\n" for i, e in enumerate(exchanges)))

    data = run_report(str(capture), flags_bundle, tmp_path / "r.html")

    assert data["capture"]["skipped"] == {}
    assert (data["capture"]["records"], data["capture"]["rows"]) == (3, 30)
    X = encode(frame, list(model.manifest.features))
    predicted = model.predict(FeatureSchema(model.manifest).validate(X)).labels
    # JSON keys: the classes' text
    assert data["predictions"]["counts"] == {
        str(c): int((predicted == c).sum()) for c in (False, True)
    }
    premium = _by_name(data["drift"]["features"])["premium"]
    assert premium["counts"] == [int((~frame["premium"]).sum()), int(frame["premium"].sum())]


def test_report_reads_what_sagemaker_captures_of_json_lines_and_csv_exchanges(
    iris_bundle: Path, tmp_path: Path
) -> None:
    """Records built as SageMaker's capture builds them, from the bodies that went to and came
    from the real service's /invocations (JSON Lines in and out, CSV in and out)."""
    manifest = read_manifest(iris_bundle)
    names = manifest.feature_names
    rows = FIXTURE_ROWS[:4]
    jsonl = "\n".join(json.dumps(dict(zip(names, r.tolist(), strict=True))) for r in rows)
    csv = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    exchanges = []
    with TestClient(create_app(AppSettings(model_uri=str(iris_bundle)))) as client:
        for body, media in ((jsonl, "application/jsonlines"), (csv, "text/csv")):
            r = client.post(
                "/invocations", content=body, headers={"Content-Type": media, "Accept": media}
            )
            assert r.status_code == 200, r.text
            exchanges.append((body, media, r.text))

    capture = tmp_path / "capture.jsonl"
    capture.write_text(
        "".join(
            _sagemaker_record(i, media, body, answer) + "\n"
            for i, (body, media, answer) in enumerate(exchanges)
        )
    )

    data = run_report(str(capture), iris_bundle, tmp_path / "r.html")

    assert data["capture"]["skipped"] == {}
    assert (data["capture"]["records"], data["capture"]["rows"]) == (2, 8)
    predicted = load_model(iris_bundle).predict(rows)
    assert predicted.probabilities is not None
    expected = np.concatenate([predicted.labels, predicted.labels])
    assert data["predictions"]["counts"] == {str(c): int((expected == c).sum()) for c in (0, 1, 2)}
    assert data["predictions"]["mean_probability"] == pytest.approx(
        dict(zip(("0", "1", "2"), predicted.probabilities.mean(axis=0).tolist(), strict=True))
    )
    assert (
        _by_name(data["drift"]["features"])[names[0]]["counts"]
        == _direct_bins(np.concatenate([rows, rows]), manifest)[names[0]]
    )


def test_histogram_chart_names_a_point_mass_bin_and_the_bin_above_it() -> None:
    """The zeros of a zero-inflated amount have a bin ``[0, next float)`` of their own; the
    chart labels it 0 and the next bin >0, not by its lower edge (5e-324)."""
    import math

    from pipelines.monitoring.render import _bin_label
    from pipelines.profile import histogram

    amounts = np.concatenate([np.zeros(600), np.linspace(0.5, 90.0, 400)])
    edges = histogram(amounts).bin_edges

    assert [_bin_label(edges, i) for i in range(3)] == ["0", ">0", f"{edges[2]:.3g}"]
    assert edges[1] == math.nextafter(0.0, math.inf)
