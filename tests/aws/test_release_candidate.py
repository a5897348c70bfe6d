"""`mlship register` without a registry: the champion is the bundle the stack serves (S3)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from cli.main import main as mlship
from core.bundle import ARCHIVE_NAME, load_bundle
from pipelines.evaluate import Champion
from pipelines.release.candidate import compare, served_champion

BUCKET = "mlship-dev-artifacts-123456789012-us-east-1"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained by the SageMaker file contract with the repository's params.yaml."""
    import os
    import tarfile

    from pipelines.data import materialise

    root = tmp_path_factory.mktemp("opt-ml")
    materialise("breast_cancer", root / "input" / "data" / "train" / "breast_cancer.csv")
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        assert (
            mlship(["train", "--sagemaker", str(root), "--params", str(ROOT / "params.yaml")]) == 0
        )
    finally:
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    bundle = root / "model"
    with tarfile.open(bundle / ARCHIVE_NAME, "w:gz") as tar:
        for file in sorted(bundle.iterdir()):
            if file.name != ARCHIVE_NAME:
                tar.add(file, arcname=file.name)
    return bundle


def _serve_from_s3(bundle: Path, key: str = "models/served/model.tar.gz") -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(bundle / ARCHIVE_NAME), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def test_served_champion_is_the_served_bundles_manifest(aws: str, trained: Path) -> None:
    uri = _serve_from_s3(trained)
    champion = served_champion(uri)
    manifest = load_bundle(trained).manifest
    assert champion == Champion(
        version=f"served {manifest.version}",
        metrics=manifest.metrics,
        task=manifest.task,
        dataset_sha256=manifest.dataset_sha256,
    )
    assert served_champion(f"s3://{BUCKET}/models/none/model.tar.gz") is None


def test_a_bundle_worse_than_the_served_one_is_not_admitted(
    aws: str, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    manifest = load_bundle(trained).manifest
    better = {**manifest.metrics, "roc_auc": manifest.metrics["roc_auc"] + 0.02}
    assert not compare(manifest, Champion("served x", better, task="classification")).passed
    assert compare(
        manifest,
        Champion(
            "served x", {**better, "roc_auc": better["roc_auc"] - 0.015}, task="classification"
        ),
    ).passed

    uri = _serve_from_s3(trained)
    archive = str(trained / ARCHIVE_NAME)
    code = mlship(
        ["register", "--bundle", archive, "--out", str(tmp_path / "a"), "--served-model", uri]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"gate against the champion ({uri})" in captured.err
    assert "version=\n" in captured.out  # no registry: nothing registered
    assert (tmp_path / "a" / "bundle" / ARCHIVE_NAME).read_bytes() == Path(archive).read_bytes()
