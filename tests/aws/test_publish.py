"""`mlship publish` against moto's S3: verified archives, immutable versions, and the bundle's
data-quality baseline copied where the stack's batch check reads it."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml

from cli.main import main as mlship
from core.baseline import BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS
from core.bundle import BundleError, load_bundle, write_bundle
from core.errors import ConfigError
from core.manifest import ManifestDraft
from core.s3 import S3Error
from infra.pipeline_definition import CHECK_STEP
from infra.plan import run_stack
from pipelines.params import load_params
from pipelines.release.publish import PublishError, model_key, publish_bundle
from pipelines.train import train

BUCKET = "mlship-dev-artifacts"
PREFIX = "models/current/baseline/"


@pytest.fixture
def bucket(aws: str) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def test_publish_uploads_under_models_version_and_prints_outputs(
    bucket: str, logistic_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mlship(["publish", "--bundle", str(logistic_bundle), "--bucket", bucket])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    version = load_bundle(logistic_bundle).manifest.version
    key = f"models/{version}/model.tar.gz"
    lines = dict(line.split("=", 1) for line in captured.out.strip().splitlines())
    assert lines["uri"] == f"s3://{bucket}/{key}"
    assert lines["key"] == key
    assert f"pulumi config set mlship:modelDataKey {key}" in captured.err
    # What was uploaded is the bundle: download it and load it.
    downloaded = tmp_path / "model.tar.gz"
    boto3.client("s3").download_file(bucket, key, str(downloaded))
    assert load_bundle(downloaded).manifest.version == version


def test_publish_same_archive_twice_is_a_no_op(bucket: str, logistic_bundle: Path) -> None:
    first = publish_bundle(logistic_bundle, bucket, version="v1")
    second = publish_bundle(logistic_bundle, bucket, version="v1")
    assert first.uploaded is True
    assert second.uploaded is False
    assert second.sha256 == first.sha256


def test_publish_refuses_another_archive_under_an_existing_version(
    bucket: str, logistic_bundle: Path, forest_bundle: Path
) -> None:
    publish_bundle(logistic_bundle, bucket, version="v1")
    with pytest.raises(PublishError, match="already holds a different archive"):
        publish_bundle(forest_bundle, bucket, version="v1")


def test_publish_refuses_a_tampered_archive(
    bucket: str, logistic_bundle: Path, tmp_path: Path
) -> None:
    work = tmp_path / "x"
    shutil.copytree(logistic_bundle, work)
    (work / "golden.json").write_text('{"inputs": [], "predictions": []}')
    with tarfile.open(work / "model.tar.gz", "w:gz") as tar:
        for p in sorted(work.iterdir()):
            if p.name != "model.tar.gz":
                tar.add(p, arcname=p.name)
    with pytest.raises(BundleError, match="does not match its checksum"):
        publish_bundle(work, bucket, version="v2")
    objects = boto3.client("s3").list_objects_v2(Bucket=bucket)
    assert objects.get("KeyCount", 0) == 0


def test_publish_missing_bucket_is_named(aws: str, logistic_bundle: Path) -> None:
    with pytest.raises(S3Error, match="mlship-missing"):
        publish_bundle(logistic_bundle, "mlship-missing", version="v1")


@pytest.mark.parametrize("version", ["", "../x", "a/b", "v 1", "-v"])
def test_model_key_rejects_unsafe_versions(version: str) -> None:
    with pytest.raises(PublishError):
        model_key(version)


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle as `mlship train` writes it (baseline included), on a real table with text
    features and missing values."""
    from palmerpenguins import load_penguins

    tmp = tmp_path_factory.mktemp("trained")
    frame: pd.DataFrame = load_penguins()
    frame.to_csv(tmp / "penguins.csv", index=False)
    data = {"path": str(tmp / "penguins.csv"), "target": "species", "builtin": None}
    raw = {
        "name": "penguins",
        "data": {**data, "expectations": None},
        "model": {"type": "logistic_regression", "hyperparameters": {}},
        "gate": {"thresholds": {}},
        "output": {"dir": str(tmp / "bundle"), "metrics": None, "onnx": False},
        "registry": {"enabled": False},
    }
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    return train(load_params(tmp / "params.yaml"), say=lambda _: None).bundle_dir


def _object(bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    got = boto3.client("s3").get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), dict(got)


def test_publish_copies_the_baseline_exactly_where_the_stacks_batch_check_reads_it(
    aws: str, trained_bundle: Path
) -> None:
    """The prod stack's plan with Model Monitor's check gives both sides from one
    configuration: the pipeline definition's supplied baseline, and the stack output the
    rollout passes to publish."""
    plan = run_stack("prod", overrides={"mlship:batchInputCheck": "model-monitor"})
    bucket, prefix = plan.outputs["bucketName"], plan.outputs["batchBaselinePrefix"]
    (pipeline,) = plan.of_type("aws:sagemaker/pipeline:Pipeline")
    definition = json.loads(pipeline.inputs["pipelineDefinition"])
    (check,) = [s for s in definition["Steps"] if s["Name"] == CHECK_STEP]
    boto3.client("s3").create_bucket(Bucket=bucket)

    published = publish_bundle(trained_bundle, bucket, baseline_prefix=prefix)

    uris = {f"s3://{bucket}/{key}" for key in published.baseline}
    assert uris == {check["SuppliedBaselineStatistics"], check["SuppliedBaselineConstraints"]}
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(published.baseline)
    for key, name in zip(
        sorted(published.baseline), sorted((BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS)), strict=True
    ):
        body, got = _object(bucket, key)
        assert body == (trained_bundle / name).read_bytes()  # the verified bundle's bytes
        assert got["ContentType"] == "application/json"
        assert got["Metadata"]["mlship-model-key"] == published.key
        assert got["Metadata"]["sha256"] == load_bundle(trained_bundle).manifest.files[name]


def test_publish_cli_copies_the_baseline_and_says_where(
    bucket: str, trained_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["publish", "--bundle", str(trained_bundle), "--bucket", bucket]
    assert mlship([*args, "--baseline-prefix", PREFIX]) == 0
    captured = capsys.readouterr()
    for name in ("statistics.json", "constraints.json"):
        assert f"baseline for the batch check: s3://{bucket}/{PREFIX}{name}" in captured.err
    # stdout (appended to $GITHUB_OUTPUT) is unchanged: uri=, key=, sha256=
    assert [line.split("=", 1)[0] for line in captured.out.splitlines()] == ["uri", "key", "sha256"]


def test_publish_without_a_prefix_leaves_the_baseline_alone(
    bucket: str, trained_bundle: Path
) -> None:
    published = publish_bundle(trained_bundle, bucket)
    assert published.baseline == ()
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [published.key]


def test_republishing_a_version_puts_its_baseline_back(
    bucket: str, trained_bundle: Path, tmp_path: Path
) -> None:
    """Releasing an earlier bundle again: the archive is already there (not uploaded twice),
    but the baseline at the prefix must become its own again."""
    other = _other_version(trained_bundle, tmp_path)

    first = publish_bundle(trained_bundle, bucket, baseline_prefix=PREFIX)
    publish_bundle(other, bucket, baseline_prefix=PREFIX)
    assert (
        _object(bucket, f"{PREFIX}statistics.json")[0] == (other / BUNDLE_STATISTICS).read_bytes()
    )
    again = publish_bundle(trained_bundle, bucket, baseline_prefix=PREFIX)

    assert again.uploaded is False and again.sha256 == first.sha256
    body, got = _object(bucket, f"{PREFIX}statistics.json")
    assert body == (trained_bundle / BUNDLE_STATISTICS).read_bytes()
    assert got["Metadata"]["mlship-model-key"] == first.key


def _other_version(trained_bundle: Path, tmp_path: Path) -> Path:
    """The same model as version v2, with a baseline of its own."""
    loaded = load_bundle(trained_bundle)
    stats = json.loads((trained_bundle / BUNDLE_STATISTICS).read_text())
    stats["dataset"]["item_count"] += 1
    (tmp_path / "statistics.json").write_text(json.dumps(stats))
    draft = ManifestDraft(**loaded.manifest.model_dump(exclude={"files"}) | {"version": "v2"})
    extra = {
        BUNDLE_STATISTICS: tmp_path / "statistics.json",
        BUNDLE_CONSTRAINTS: trained_bundle / BUNDLE_CONSTRAINTS,
    }
    return write_bundle(tmp_path / "v2", loaded.model, draft, loaded.golden, extra)


def test_a_rollback_publishes_the_previous_archive_from_s3_and_its_baseline_comes_back(
    bucket: str, trained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rollout action's rollback step: the failed release had put its own baseline at the
    prefix; publishing the previous release's key again (as the runner has no bundle of it)
    uploads nothing and puts the previous baseline back."""
    previous = publish_bundle(trained_bundle, bucket, baseline_prefix=PREFIX)
    other = _other_version(trained_bundle, tmp_path)
    failed = publish_bundle(other, bucket, baseline_prefix=PREFIX)
    stats = f"{PREFIX}statistics.json"
    assert _object(bucket, stats)[1]["Metadata"]["mlship-model-key"] == failed.key
    capsys.readouterr()

    args = ["publish", "--bundle", previous.uri, "--bucket", bucket, "--baseline-prefix", PREFIX]
    assert mlship(args) == 0

    captured = capsys.readouterr()
    assert "already published (same sha256)" in captured.err
    assert f"key={previous.key}" in captured.out.splitlines()
    for name in (BUNDLE_STATISTICS, BUNDLE_CONSTRAINTS):
        body, got = _object(bucket, PREFIX + Path(name).name)
        assert body == (trained_bundle / name).read_bytes()
        assert got["Metadata"]["mlship-model-key"] == previous.key
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(k for k in keys if not k.startswith(PREFIX)) == sorted([previous.key, failed.key])


def test_publishing_an_s3_archive_that_is_not_there_names_it(bucket: str) -> None:
    uri = f"s3://{bucket}/models/nope/model.tar.gz"
    with pytest.raises(S3Error, match=r"Could not download s3://.*/models/nope/model\.tar\.gz"):
        publish_bundle(uri, bucket, baseline_prefix=PREFIX)
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_publish_refuses_a_baseline_prefix_for_a_bundle_without_one(
    bucket: str, logistic_bundle: Path
) -> None:
    with pytest.raises(PublishError, match=r"has no baseline/statistics\.json or .*Retrain"):
        publish_bundle(logistic_bundle, bucket, version="v1", baseline_prefix=PREFIX)
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize("prefix", ["models/current/baseline", "/models/current/"])
def test_publish_refuses_a_baseline_prefix_that_is_not_one(
    bucket: str, trained_bundle: Path, prefix: str
) -> None:
    with pytest.raises(ConfigError, match="ending in '/'"):
        publish_bundle(trained_bundle, bucket, baseline_prefix=prefix)
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
