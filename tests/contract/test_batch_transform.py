"""SageMaker Batch Transform against the real container: files larger than a mini-batch,
split into ``MultiRecord`` / ``Line`` mini-batches of 5 and 6 MB exactly as SageMaker does,
for a wide (30 features) and a narrow (5 features) model, in CSV and JSON Lines. Every output
line answers the input line at the same position, equal to the in-process prediction.

The container's body limit comes from the launcher's own model environment
(``transform_environment``), so the job and the service agree by construction; a job created
outside mlship gets it from the variables SageMaker sets in the container.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.model import Model, load_model
from pipelines.sagemaker.requests import (
    TransformJobSpec,
    transform_environment,
    transform_job_request,
)
from tests.app.conftest import test_split
from tests.contract.batch_transform import MIB, container_variables, run_transform
from tests.contract.conftest import Server, sagemaker_model_dir, start_server, stop_server
from tests.factories import make_bundle

pytestmark = pytest.mark.slow

ROWS = {"wide": 30_000, "narrow": 200_000}  # about 8 MB each: a full mini-batch and more


def _spec(max_payload_mb: int) -> TransformJobSpec:
    return TransformJobSpec(
        name="mlship-transform-test",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship:abc",
        role_arn="arn:aws:iam::123456789012:role/mlship-sagemaker",
        model_data_uri="s3://bucket/models/v1/model.tar.gz",
        input_uri="s3://bucket/batch/in/",
        output_uri="s3://bucket/batch/out/",
        max_payload_mb=max_payload_mb,
    )


@pytest.fixture(scope="module")
def bundles(logistic_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    narrow = make_bundle(tmp_path_factory.mktemp("narrow") / "narrow", "narrow")
    return {"wide": logistic_bundle, "narrow": narrow}


@pytest.fixture(scope="module")
def files(bundles: dict[str, Path]) -> dict[str, tuple[bytes, np.ndarray]]:
    """CSV text of rows like the held-out ones, at six significant digits (as exports write
    them), and the same rows parsed."""
    rng = np.random.default_rng(7)
    out = {}
    for kind, bundle in bundles.items():
        base = test_split(bundle)
        rows = base[rng.integers(0, len(base), ROWS[kind])] * rng.uniform(0.95, 1.05, (1, 1))
        buffer = io.StringIO()
        np.savetxt(buffer, rows * rng.uniform(0.95, 1.05, rows.shape), fmt="%.6g", delimiter=",")
        text = buffer.getvalue()
        out[kind] = (text.encode(), np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2))
    return out


@pytest.fixture(scope="module")
def servers(
    bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, int], Server]]:
    started: dict[tuple[str, int], Server] = {}
    try:
        for kind, bundle in bundles.items():
            model_dir = sagemaker_model_dir(
                bundle / "model.tar.gz", tmp_path_factory.mktemp(f"sm-{kind}")
            )
            for mb in (5, 6):
                # the model's environment from the launcher, and what SageMaker adds in a job
                env = transform_environment(_spec(mb)) | container_variables(mb)
                env.pop("MLSHIP_MODEL_URI")  # the test's extracted model directory instead
                if mb == 6:
                    # One worker on this machine's CPUs: large answers are written in row
                    # slices on the CPUs it has to itself (app/slices.py).
                    env["MLSHIP_WORKERS"] = "1"
                log = tmp_path_factory.mktemp("logs") / f"{kind}-{mb}.log"
                started[kind, mb] = start_server(model_dir, log, **env)
        yield started
    finally:
        for server in started.values():
            stop_server(server)


def _jsonlines(rows: np.ndarray, names: list[str] | None = None) -> bytes:
    """A list per line, or with ``names`` a record per line (pandas' records lines)."""
    if names is None:
        return b"".join(json.dumps(r).encode() + b"\n" for r in rows.tolist())
    return pd.DataFrame(rows, columns=names).to_json(orient="records", lines=True).encode()


@pytest.mark.parametrize("fmt", ["text/csv", "application/jsonlines", "records"])
@pytest.mark.parametrize("mb", [5, 6])
@pytest.mark.parametrize("kind", ["wide", "narrow"])
def test_batch_transform_scores_every_line_in_order(
    servers: dict[tuple[str, int], Server],
    bundles: dict[str, Path],
    files: dict[str, tuple[bytes, np.ndarray]],
    kind: str,
    mb: int,
    fmt: str,
) -> None:
    csv, rows = files[kind]
    model: Model = load_model(bundles[kind])
    if fmt == "records":
        data, fmt = _jsonlines(rows, model.feature_names), "application/jsonlines"
    else:
        data = csv if fmt == "text/csv" else _jsonlines(rows)

    result = run_transform(servers[kind, mb].url, data, mb, fmt, fmt)

    lines = result.output.decode().splitlines()
    expected = model.predict(rows)
    assert len(data) > mb * MIB  # more than one mini-batch, the first filled up to the limit
    assert result.mini_batches >= 2 and result.largest_payload > (mb - 1) * MIB
    assert len(lines) == len(rows)
    if fmt == "text/csv":
        labels = [int(line.split(",")[0]) for line in lines]
        proba = np.array([[float(v) for v in line.split(",")[1:]] for line in lines])
    else:
        answers = [json.loads(line) for line in lines]
        labels = [a["predictions"][0] for a in answers]
        proba = np.array([a["probabilities"][0] for a in answers])
    assert labels == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(proba, expected.probabilities, rtol=0, atol=1e-15)


def _cache_rows(url: str) -> dict[str, float]:
    """The prediction cache's row counters on ``/metrics`` (0 when a series is absent)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return {
        what: found.get(f"mlship_prediction_cache_{what}_total", 0.0)
        for what in ("hits", "misses", "skipped_rows")
    }


def test_batch_transform_mini_batches_are_predicted_not_looked_up_in_the_cache(
    servers: dict[tuple[str, int], Server], files: dict[str, tuple[bytes, np.ndarray]]
) -> None:
    """The launcher's environment leaves the prediction cache at its default, on for this
    deterministic model. The same file scored twice: every row of every mini-batch goes to
    the model, none is looked up or answered from the cache (a lookup took 300-430 ms per
    146,000-row mini-batch)."""
    csv, rows = files["narrow"]
    url = servers["narrow", 5].url
    before = _cache_rows(url)

    for _ in range(2):
        run_transform(url, csv, 5, "text/csv", "text/csv")

    after = _cache_rows(url)
    assert after["skipped_rows"] - before["skipped_rows"] == 2 * len(rows)
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize("kind", ["wide", "narrow"])
def test_batch_transform_scores_a_json_file_as_one_request(
    servers: dict[tuple[str, int], Server],
    bundles: dict[str, Path],
    files: dict[str, tuple[bytes, np.ndarray]],
    kind: str,
    wrapped: bool,
) -> None:
    """``SplitType=None``: a JSON file of rows (as ``json.dump`` writes an array, or under
    ``instances``) just under MaxPayloadInMB is one request, answered in one JSON body."""
    _, rows = files[kind]
    rows = rows[: int(len(rows) * 4.9 * MIB / len(json.dumps(rows.tolist())))]
    data = json.dumps({"instances": rows.tolist()} if wrapped else rows.tolist()).encode()

    result = run_transform(
        servers[kind, 5].url, data, 5, "application/json", "application/json", "None"
    )

    answer = json.loads(result.output)
    expected = load_model(bundles[kind]).predict(rows)
    assert len(data) > 4 * MIB
    assert answer["predictions"] == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(answer["probabilities"], expected.probabilities, rtol=0, atol=1e-15)


def test_batch_transform_created_outside_mlship_takes_the_job_payload_limit(
    bundles: dict[str, Path],
    files: dict[str, tuple[bytes, np.ndarray]],
    tmp_path: Path,
) -> None:
    """A job created from the console or the SageMaker SDK's Transformer, with MaxPayloadInMB=8,
    no Accept, and none of mlship's variables on the model, only the
    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT that SageMaker's framework containers read: SageMaker
    tells the container its payload limit in SAGEMAKER_MAX_PAYLOAD_IN_MB, and the service
    takes mini-batches of that size (above its 6 MiB default), says so on
    /execution-parameters, and answers each without Accept in CSV, a line per input line."""
    csv, rows = files["narrow"]
    model_dir = sagemaker_model_dir(bundles["narrow"] / "model.tar.gz", tmp_path / "model")
    env = container_variables(8, max_concurrent=2) | {"MLSHIP_WORKERS": "1"}
    env["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] = "text/csv"  # on the model (CreateModel)
    server = start_server(model_dir, tmp_path / "serve.log", **env)
    try:
        with urllib.request.urlopen(f"{server.url}/execution-parameters", timeout=10) as r:
            parameters = json.loads(r.read())
        result = run_transform(server.url, csv, 8, "text/csv", None)
    finally:
        stop_server(server)

    assert parameters["MaxPayloadInMB"] == 8
    assert (
        result.largest_payload > 7 * MIB
    )  # above the 6 MiB a service without the job's hint takes
    lines = result.output.decode().splitlines()
    assert [int(line.split(",")[0]) for line in lines] == load_model(bundles["narrow"]).predict(
        rows
    ).labels.tolist()


def _job_server(bundle: Path, spec: TransformJobSpec, tmp_path: Path) -> Server:
    """The container as ``spec``'s job runs it: the launcher's model environment and what
    SageMaker adds, the bundle extracted as SageMaker extracts it."""
    model_dir = sagemaker_model_dir(bundle / "model.tar.gz", tmp_path / "model")
    env = transform_environment(spec) | container_variables(spec.max_payload_mb)
    env.pop("MLSHIP_MODEL_URI")  # the extracted directory instead
    return start_server(model_dir, tmp_path / "serve.log", **env)


def test_batch_transform_joins_each_answer_to_its_identified_input_record(
    penguin_bundle: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """``--id-columns 1`` (the stack's ``batchIdColumns``): a penguins file whose first column is
    an order reference (quoted: it holds a comma), in 1 MB mini-batches through the container
    with the launcher's own DataProcessing. The model gets each line without the reference
    (InputFilter), and each output record is its whole input record followed by the answer
    (JoinSource=Input) that the same rows get without any identifier: joined in order, none
    lost or shifted."""
    rng = np.random.default_rng(11)
    features = penguins[load_model(penguin_bundle).feature_names]
    frame = features.iloc[rng.integers(0, len(features), 30_000)].reset_index(drop=True)
    refs = pd.Series([f"order {k:05d}, box {k % 7}" for k in range(len(frame))], name="ref")
    identified = pd.concat([refs, frame], axis=1).to_csv(index=False, header=False).encode()
    plain = frame.to_csv(index=False, header=False).encode()
    spec = replace(_spec(1), id_columns=1)
    processing = transform_job_request(spec)["DataProcessing"]
    server = _job_server(penguin_bundle, spec, tmp_path)
    try:
        joined = run_transform(
            server.url, identified, 1, "text/csv", "text/csv", "Line", processing
        )
        alone = run_transform(server.url, plain, 1, "text/csv", "text/csv")
        # a header gets no answer (the service skips the feature names): nothing to join it
        # to, so the job fails, as `mlship check-input --id-columns` says beforehand
        headed = pd.concat([refs, frame], axis=1).to_csv(index=False).encode()
        with pytest.raises(RuntimeError, match="cannot join"):
            run_transform(server.url, headed, 1, "text/csv", "text/csv", "Line", processing)
    finally:
        stop_server(server)

    assert joined.mini_batches >= 2  # a mini-batch boundary inside the file
    out = pd.read_csv(io.BytesIO(joined.output), header=None, keep_default_na=False)
    answers = pd.read_csv(io.BytesIO(alone.output), header=None, keep_default_na=False)
    assert len(out) == len(frame) == len(answers)
    assert out[0].tolist() == refs.tolist()  # each record keeps its reference, in order
    inputs = pd.read_csv(io.BytesIO(identified), header=None, keep_default_na=False)
    pd.testing.assert_frame_equal(out.iloc[:, : inputs.shape[1]], inputs)
    # labels exactly; probabilities to the last bits a row's place in a batch may round
    pd.testing.assert_frame_equal(
        out.iloc[:, inputs.shape[1] :].set_axis(answers.columns, axis=1), answers, rtol=1e-12
    )


def test_batch_transform_keeps_each_json_lines_record_with_its_answer(
    penguin_bundle: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """``--features-attribute features`` (``batchFeaturesAttribute``), the guide's JSON
    example: penguin records ``{"order": ..., "features": {...}}`` (gaps as null) in 1 MB
    mini-batches. The model gets each record's ``features`` (InputFilter), and each output
    record is its input record with, under SageMakerOutput, the answer the features alone get
    in a job without identifiers (JoinSource=Input)."""
    rng = np.random.default_rng(12)
    features = penguins[load_model(penguin_bundle).feature_names]
    frame = features.iloc[rng.integers(0, len(features), 12_000)].reset_index(drop=True)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    nested = [{"order": f"A-{k:05d}", "features": r} for k, r in enumerate(records)]
    identified = b"".join(json.dumps(r).encode() + b"\n" for r in nested)
    plain = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    jsonl = "application/jsonlines"
    spec = replace(_spec(1), content_type=jsonl, features_attribute="features")
    processing = transform_job_request(spec)["DataProcessing"]
    server = _job_server(penguin_bundle, spec, tmp_path)
    try:
        joined = run_transform(server.url, identified, 1, jsonl, jsonl, "Line", processing)
        alone = run_transform(server.url, plain, 1, jsonl, jsonl)
    finally:
        stop_server(server)

    assert joined.mini_batches >= 2  # a mini-batch boundary inside the file
    out = [json.loads(line) for line in joined.output.decode().splitlines()]
    answers = [json.loads(line) for line in alone.output.decode().splitlines()]
    assert len(out) == len(nested) == len(answers)
    assert [{k: v for k, v in o.items() if k != "SageMakerOutput"} for o in out] == nested
    got = [o["SageMakerOutput"] for o in out]
    assert [a["predictions"] for a in got] == [a["predictions"] for a in answers]
    # the two files split into different mini-batches, and a row's last bit may round
    # differently by where it falls in a batch (app/slices.py)
    np.testing.assert_allclose(
        [a["probabilities"] for a in got], [a["probabilities"] for a in answers], rtol=1e-12
    )
