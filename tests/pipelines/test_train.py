"""End-to-end training into tmp_path: output, bundle contents, determinism, the gate."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.main import main as mlship
from core.bundle import ARCHIVE_NAME, ONNX_FILE, BundleError, load_bundle
from core.onnx_model import OnnxModel
from core.registry import RegistrySettings, list_versions
from pipelines.params import load_params
from pipelines.train import git_commit, train
from tests.pipelines.conftest import WriteParams


def test_train_end_to_end(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    breast_cancer_csv: Path,
    tmp_path: Path,
) -> None:
    params = write_params()
    assert mlship(["train", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    bundle_dir = tmp_path / "out" / "bundle"
    for step in range(1, 7):
        assert f"[{step}/6]" in out
    assert f"bundle    {bundle_dir}" in out
    assert "registry  mlship version 1 (alias challenger" in out
    assert "gate      passed" in out

    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    assert f"version   {manifest.version}" in out
    assert manifest.name == "mlship"
    assert manifest.task == "classification"
    assert manifest.dataset_sha256 == hashlib.sha256(breast_cancer_csv.read_bytes()).hexdigest()
    assert manifest.git_commit is None  # tmp_path is not a git work tree
    assert manifest.target.name == "target"
    assert manifest.target.classes == [0, 1]
    assert len(manifest.features) == 30
    assert manifest.feature_names[0] == "mean_radius"
    assert set(manifest.reference) == set(manifest.feature_names)
    assert manifest.params["model"]["type"] == "logistic_regression"
    assert manifest.metrics["accuracy"] >= 0.93
    assert f"accuracy={manifest.metrics['accuracy']:.4f}" in out
    assert len(bundle.golden.inputs) == 20
    assert bundle.golden.probabilities is not None
    # no staging directories left next to the bundle
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["bundle"]


def test_bundle_round_trip_predictions_equal(write_params: WriteParams, tmp_path: Path) -> None:
    result = train(load_params(write_params(registry={"enabled": False})))
    for source in (result.bundle_dir, result.bundle_dir / ARCHIVE_NAME):
        bundle = load_bundle(source)
        X = np.asarray(bundle.golden.inputs, dtype=np.float64)
        # golden rows were predicted by the in-memory model before it was saved
        assert bundle.model.predict(X).tolist() == bundle.golden.predictions
        assert bundle.golden.probabilities is not None
        assert np.array_equal(bundle.model.predict_proba(X), bundle.golden.probabilities)


def test_tampered_bundle_refused(write_params: WriteParams, tmp_path: Path) -> None:
    result = train(load_params(write_params(registry={"enabled": False})))
    copy = shutil.copytree(result.bundle_dir, tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    golden = json.loads((copy / "golden.json").read_text())
    golden["predictions"][0] = 1 - golden["predictions"][0]
    (copy / "golden.json").write_text(json.dumps(golden))
    with pytest.raises(BundleError, match=r"golden\.json does not match its checksum"):
        load_bundle(copy)
    assert (
        manifest["files"]["golden.json"]
        != hashlib.sha256((copy / "golden.json").read_bytes()).hexdigest()
    )


def test_same_seed_same_model_other_seed_other_split(
    write_params: WriteParams, tmp_path: Path
) -> None:
    def run(seed: int, name: str) -> tuple[dict[str, float], list[list[float]]]:
        params = load_params(
            write_params(
                seed=seed,
                model={"type": "random_forest", "hyperparameters": {"n_estimators": 25}},
                registry={"enabled": False},
            )
        )
        result = train(params, out=tmp_path / name)
        bundle = load_bundle(result.bundle_dir)
        assert bundle.golden.probabilities is not None
        return result.metrics, bundle.golden.probabilities

    first, second, other = run(1, "a"), run(1, "b"), run(2, "c")
    assert first == second
    assert first != other


def test_regression_model_trains(write_params: WriteParams, tmp_path: Path) -> None:
    params = write_params(
        data={"path": str(tmp_path / "diabetes.csv"), "builtin": "diabetes", "expectations": None},
        model={"type": "ridge", "hyperparameters": {"alpha": 1.0}},
        gate={"thresholds": {"r2": 0.3, "rmse": 70.0}, "champion_metric": None},
        registry={"enabled": False},
    )
    result = train(load_params(params))
    assert (tmp_path / "diabetes.csv").is_file(), "builtin data is materialised when missing"
    bundle = load_bundle(result.bundle_dir)
    assert bundle.manifest.task == "regression"
    assert bundle.manifest.target.classes is None
    assert set(result.metrics) == {"rmse", "mae", "r2"}
    assert bundle.golden.probabilities is None
    X = np.asarray(bundle.golden.inputs, dtype=np.float64)
    assert np.allclose(bundle.model.predict(X), bundle.golden.predictions)


def test_missing_values_are_imputed(
    write_params: WriteParams, breast_cancer_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(breast_cancer_csv)
    frame.loc[::7, "mean_texture"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    params = write_params(data={"expectations": None}, registry={"enabled": False})
    result = train(load_params(params), data=str(path))
    bundle = load_bundle(result.bundle_dir)
    texture = bundle.manifest.features[1]
    assert texture.name == "mean_texture"
    assert texture.nullable is True
    assert bundle.model.predict(np.full((1, 30), np.nan)).shape == (1,)


def test_train_bundle_carries_onnx_equal_to_scikit_learn(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, breast_cancer_csv: Path
) -> None:
    params = write_params(registry={"enabled": False})
    result = train(load_params(params))
    assert "model.onnx added: matches scikit-learn on 114 test rows" in capsys.readouterr().out
    bundle = load_bundle(result.bundle_dir)
    assert ONNX_FILE in bundle.manifest.files
    X = pd.read_csv(breast_cancer_csv).drop(columns="target").to_numpy(dtype=np.float64)
    onnx = OnnxModel(bundle).predict(X)
    assert onnx.labels.tolist() == bundle.model.predict(X).tolist()
    assert onnx.probabilities is not None
    assert np.allclose(onnx.probabilities, bundle.model.predict_proba(X), atol=1e-9)


def test_train_onnx_off_leaves_it_out(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams
) -> None:
    params = write_params(registry={"enabled": False}, output={"onnx": False})
    assert ONNX_FILE not in load_bundle(train(load_params(params)).bundle_dir).manifest.files
    assert "model.onnx" not in capsys.readouterr().out


def test_train_with_missing_values_carries_onnx_that_imputes_like_scikit_learn(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    breast_cancer_csv: Path,
    tmp_path: Path,
) -> None:
    """With gaps the pipeline imputes; skl2onnx's Imputer operator has no float64 kernel in
    onnxruntime, so such models had no model.onnx (pipelines/onnx_imputer.py)."""
    frame = pd.read_csv(breast_cancer_csv)
    frame.loc[::7, "mean_texture"] = np.nan
    frame.loc[::11, "worst_area"] = np.nan
    holes = tmp_path / "holes.csv"
    frame.to_csv(holes, index=False)
    params = write_params(data={"expectations": None}, registry={"enabled": False})

    result = train(load_params(params), data=str(holes))

    assert "model.onnx added: matches scikit-learn" in capsys.readouterr().out
    bundle = load_bundle(result.bundle_dir)
    X = frame.drop(columns="target").to_numpy(dtype=np.float64)
    X = np.vstack([X, np.full((1, X.shape[1]), np.nan)])  # a row of gaps only
    onnx = OnnxModel(bundle).predict(X)
    assert onnx.labels.tolist() == bundle.model.predict(X).tolist()
    assert onnx.probabilities is not None
    assert np.abs(onnx.probabilities - bundle.model.predict_proba(X)).max() < 1e-6


def test_gate_rejects_degraded_model(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    # so much regularisation that every prediction is the majority class
    params = write_params(model={"hyperparameters": {"C": 1e-6}})
    assert mlship(["train", "--params", str(params)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: The model failed the quality gate, so nothing was registered")
    assert "accuracy 0.6316 is not >= its threshold 0.93" in err
    assert "minimum functionality: accuracy 0.6316 is no better than always predicting 1" in err
    assert "gate.thresholds" in err
    assert not (tmp_path / "out" / "bundle").exists()
    assert not (tmp_path / "out").exists(), "no staging directory left behind"
    settings = RegistrySettings.from_env()
    assert list_versions(settings) == []


def test_gate_rejects_model_worse_than_champion(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    assert mlship(["train", "--params", str(write_params())]) == 0
    assert mlship(["promote", "1"]) == 0
    previous = load_bundle(tmp_path / "out" / "bundle").manifest.version
    stump = write_params(
        model={"type": "random_forest", "hyperparameters": {"n_estimators": 1, "max_depth": 1}},
        gate={"thresholds": {}, "champion_tolerance": 0.005},
    )
    capsys.readouterr()
    assert mlship(["train", "--params", str(stump)]) == 3
    err = capsys.readouterr().err
    assert "worse than champion v1" in err
    assert "by more than the tolerance 0.005" in err
    versions = list_versions(RegistrySettings.from_env())
    assert [(v.version, v.aliases) for v in versions] == [("1", ["challenger", "champion"])]
    # the champion's bundle on disk is untouched
    assert load_bundle(tmp_path / "out" / "bundle").manifest.version == previous


def test_out_dir_that_is_not_a_bundle_is_refused(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    assert mlship(["train", "--params", str(write_params()), "--out", str(keep)]) == 1
    assert "is not an mlship bundle; refusing to overwrite it" in capsys.readouterr().err
    assert (keep / "notes.txt").read_text() == "precious"


def test_git_commit_recorded_in_a_repository(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
        "GIT_CONFIG_GLOBAL": os.devnull,  # the developer's git config must not matter
    }
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True, env=env
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head
