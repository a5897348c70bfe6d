"""`mlship train --sagemaker`: SageMaker's training-job file contract in, a bundle out."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cli.main import main as mlship
from core.bundle import load_bundle
from tests.pipelines.conftest import REPO

PARAMS = REPO / "params.yaml"


def _job_root(tmp_path: Path, data: Path, hyperparameters: dict[str, str]) -> Path:
    root = tmp_path / "opt-ml"
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    shutil.copyfile(data, channel / data.name)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    return root


def test_sagemaker_training_writes_a_loadable_bundle_with_overrides(
    tmp_path: Path, breast_cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    root = _job_root(tmp_path, breast_cancer_csv, {"model.hyperparameters.C": "0.5", "seed": "7"})

    assert mlship(["train", "--sagemaker", str(root), "--params", str(PARAMS)]) == 0

    model_dir = root / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "baseline",
        "golden.json",
        "manifest.json",
        "model.onnx",
        "model.skops",
    ]
    # SageMaker packs /opt/ml/model into model.tar.gz: that archive must be a bundle.
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in model_dir.iterdir():
            tar.add(p, arcname=p.name)
    bundle = load_bundle(archive)
    assert {"baseline/statistics.json", "baseline/constraints.json"} <= set(bundle.manifest.files)
    assert bundle.manifest.params["model"]["hyperparameters"]["C"] == 0.5
    assert bundle.manifest.params["seed"] == 7
    X = np.asarray(bundle.golden.inputs, dtype=np.float64)
    assert bundle.model.predict(X).tolist() == bundle.golden.predictions
    assert not (root / "output" / "failure").exists()
    # Without the launcher's environment the data version is the file's own hash.
    assert bundle.manifest.data_version == f"sha256:{bundle.manifest.dataset_sha256}"


def test_sagemaker_training_records_the_launchers_data_version_and_commit(
    tmp_path: Path, breast_cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLSHIP_DATA_VERSION", "s3:3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    monkeypatch.setenv("MLSHIP_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    root = _job_root(tmp_path, breast_cancer_csv, {})

    assert mlship(["train", "--sagemaker", str(root), "--params", str(PARAMS)]) == 0

    manifest = json.loads((root / "model" / "manifest.json").read_text())
    assert manifest["data_version"] == "s3:3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert manifest["git_commit"] == "0123456789abcdef0123456789abcdef01234567"


def test_sagemaker_training_two_data_files_fail_with_reason(
    tmp_path: Path, breast_cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    root = _job_root(tmp_path, breast_cancer_csv, {})
    shutil.copyfile(breast_cancer_csv, root / "input" / "data" / "train" / "more.csv")

    assert mlship(["train", "--sagemaker", str(root), "--params", str(PARAMS)]) == 1

    reason = (root / "output" / "failure").read_text()
    assert "must hold exactly one CSV or Parquet file; found breast_cancer.csv, more.csv" in reason
    assert not (root / "model").exists()


def test_sagemaker_training_unknown_hyperparameter_names_the_key(
    tmp_path: Path, breast_cancer_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    root = _job_root(tmp_path, breast_cancer_csv, {"model.hyperparameters.n_trees": "10"})

    assert mlship(["train", "--sagemaker", str(root), "--params", str(PARAMS)]) == 1

    reason = (root / "output" / "failure").read_text()
    assert "n_trees" in reason
    assert not (root / "model").exists()


def test_sagemaker_training_missing_channel_says_how_to_start_the_job(tmp_path: Path) -> None:
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)

    assert mlship(["train", "--sagemaker", str(root), "--params", str(PARAMS)]) == 1

    assert "InputDataConfig channel named 'train'" in (root / "output" / "failure").read_text()
