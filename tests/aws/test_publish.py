"""`mlship publish` against moto's S3: verified archives, immutable versions."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import boto3
import pytest

from cli.main import main as mlship
from core.bundle import BundleError, load_bundle
from core.s3 import S3Error
from pipelines.release.publish import PublishError, model_key, publish_bundle

BUCKET = "mlship-dev-artifacts"


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
