"""MLflow registry: register on a passing run, aliases, promote, fetch_bundle, clean failure."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cli.main import main as mlship
from core.bundle import BundleError, load_bundle
from core.errors import ConfigError
from core.registry import RegistryError, RegistrySettings, fetch_bundle, list_versions
from pipelines.registry import aliased, versions
from tests.pipelines.conftest import REPO, WriteParams


def _train(write_params: WriteParams, tmp_path: Path, name: str, **overrides: object) -> str:
    out = tmp_path / name
    assert mlship(["train", "--params", str(write_params(**overrides)), "--out", str(out)]) == 0
    return load_bundle(out).manifest.version


def test_register_promote_fetch_round_trip(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    first = _train(write_params, tmp_path, "one")
    second = _train(write_params, tmp_path, "two", seed=3)
    settings = RegistrySettings.from_env()
    rows = list_versions(settings)
    assert [(r.version, r.aliases, r.bundle_version) for r in rows] == [
        ("1", [], first),
        ("2", ["challenger"], second),
    ]
    assert rows[0].metrics["accuracy"] == load_bundle(tmp_path / "one").manifest.metrics["accuracy"]

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run_id = client.get_model_version("mlship", "1").run_id
    assert run_id is not None
    run = client.get_run(run_id)
    manifest = load_bundle(tmp_path / "one").manifest
    assert run.data.tags["mlship.dataset_sha256"] == manifest.dataset_sha256
    assert run.data.tags["mlship.data_version"] == f"sha256:{manifest.dataset_sha256}"
    assert manifest.data_version == run.data.tags["mlship.data_version"]
    assert run.data.tags["mlship.git_commit"] == "none"  # tmp_path is not a git work tree
    assert run.data.params["model.type"] == "logistic_regression"
    assert run.data.params["seed"] == "42"
    assert run.data.metrics == manifest.metrics
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "bundle")) == [
        "bundle/baseline",
        "bundle/golden.json",
        "bundle/manifest.json",
        "bundle/model.onnx",  # exported and verified before the run is logged
        "bundle/model.skops",
        "bundle/model.tar.gz",
    ]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "bundle/baseline")) == [
        "bundle/baseline/constraints.json",
        "bundle/baseline/statistics.json",
    ]

    with pytest.raises(RegistryError, match="does not resolve"):
        fetch_bundle("models:/mlship@champion", tmp_path / "none")
    capsys.readouterr()
    assert mlship(["promote", "1"]) == 0
    assert "mlship@champion -> version 1" in capsys.readouterr().out

    champion = fetch_bundle("models:/mlship@champion", tmp_path / "fetched")
    assert champion == tmp_path / "fetched" / "bundle"
    bundle = load_bundle(champion)  # every file verified, the baseline's too
    assert bundle.manifest.version == first
    assert (champion / "baseline" / "statistics.json").is_file()
    X = np.asarray(bundle.golden.inputs, dtype=np.float64)
    assert bundle.model.predict(X).tolist() == bundle.golden.predictions
    assert load_bundle(fetch_bundle("models:/mlship/2", tmp_path / "v2")).manifest.version == second
    # fetching again into the same directory replaces the earlier download
    again = fetch_bundle("models:/mlship/2", tmp_path / "fetched")
    assert again == champion
    assert load_bundle(again).manifest.version == second
    assert [p.name for p in (tmp_path / "fetched").iterdir()] == ["bundle"]

    assert mlship(["models"]) == 0
    listing = capsys.readouterr().out
    data = manifest.dataset_sha256[:12]
    assert f"      1  champion              classification  {data}  {first}" in listing
    assert f"      2  challenger            classification  {data}  {second}" in listing
    assert "roc_auc=" in listing
    assert client.get_model_version("mlship", "1").tags["mlship.task"] == "classification"

    assert mlship(["promote", "2"]) == 0
    assert [r.aliases for r in list_versions(settings)] == [[], ["challenger", "champion"]]


def test_registry_errors_name_the_fix(
    capsys: pytest.CaptureFixture[str], write_params: WriteParams, tmp_path: Path
) -> None:
    _train(write_params, tmp_path, "one")
    assert mlship(["promote", "9"]) == 1
    err = capsys.readouterr().err
    assert "has no version '9'" in err
    assert "(versions: 1)" in err
    with pytest.raises(ConfigError, match="is not a registry URI"):
        fetch_bundle("runs:/abc/bundle", tmp_path / "x")
    with pytest.raises(RegistryError, match="mlship models"):
        fetch_bundle("models:/mlship/7", tmp_path / "x")


def test_models_lists_nothing_before_training(capsys: pytest.CaptureFixture[str]) -> None:
    assert mlship(["models"]) == 0
    assert "No versions of 'mlship'" in capsys.readouterr().out


def test_fetch_refuses_tampered_registry_artifact(
    write_params: WriteParams, tmp_path: Path
) -> None:
    _train(write_params, tmp_path, "one")
    stored = list((tmp_path / "mlflow" / "artifacts").rglob("bundle/model.skops"))
    assert len(stored) == 1, "artifacts live next to the SQLite store"
    with stored[0].open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.skops does not match its checksum"):
        fetch_bundle("models:/mlship@challenger", tmp_path / "fetched")
    assert not (tmp_path / "fetched" / "bundle").exists(), "a refused bundle is not left behind"


def test_failed_registration_leaves_nothing(
    capsys: pytest.CaptureFixture[str],
    write_params: WriteParams,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    previous = _train(write_params, tmp_path, "out/bundle")

    def refuse(self: MlflowClient, name: str, alias: str, version: str) -> None:
        raise MlflowException("alias store is read-only")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refuse)
    capsys.readouterr()
    assert mlship(["train", "--params", str(write_params(seed=5))]) == 1
    err = capsys.readouterr().err
    assert "Registering the model" in err
    assert "alias store is read-only" in err
    assert "nothing was registered" in err
    rows = list_versions(RegistrySettings.from_env())
    assert [r.version for r in rows] == ["1"], "the half-registered version 2 was deleted"
    # the previous bundle is still in place, and no staging directory is left
    assert load_bundle(tmp_path / "out" / "bundle").manifest.version == previous
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["bundle"]
    client = MlflowClient(tracking_uri=RegistrySettings.from_env().tracking_uri)
    experiment = client.get_experiment_by_name("mlship")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_default_store_is_under_dot_mlship(
    write_params: WriteParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    _train(write_params, tmp_path, "one")
    assert (tmp_path / ".mlship" / "mlflow.db").is_file()
    assert list((tmp_path / ".mlship" / "artifacts").rglob("bundle/manifest.json"))
    settings = RegistrySettings.from_env()
    assert settings.tracking_uri == f"sqlite:///{tmp_path / '.mlship' / 'mlflow.db'}"
    assert [r.aliases for r in list_versions(settings)] == [["challenger"]]


def _repo_params(tmp_path: Path) -> Path:
    """The committed params.yaml in tmp_path: its relative data and output paths land there."""
    path = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", path)
    return path


REGRESSION = [
    "--set",
    "model.type=ridge",
    "--set",
    "data.builtin=diabetes",
    "--set",
    "data.path=data/diabetes.csv",
    "--target",
    "target",
]


def test_regressor_is_never_compared_with_or_promoted_over_a_classifier(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _repo_params(tmp_path)
    assert mlship(["train"]) == 0
    assert mlship(["promote", "1"]) == 0
    capsys.readouterr()

    # the regression example of the README works first time from the committed params.yaml
    assert mlship(["train", *REGRESSION]) == 0
    out = capsys.readouterr().out
    assert "training ridge (regression) from params.yaml" in out
    assert "validated against diabetes.json" in out
    assert (
        "champion v1 is a classification model and this is a regression model: not compared" in out
    )
    assert "registry  mlship version 2" in out

    assert mlship(["promote", "2"]) == 1
    assert capsys.readouterr().err == (
        "error: Version 2 of 'mlship' is a regression model, but mlship@champion (version 1) "
        "is a classification model: promoting it would change the kind of answer every client "
        "of models:/mlship@champion gets. Register it under its own name instead (set `name` in "
        "params.yaml, e.g. `--set name=my-regression`, and train again), or pass --force to "
        "replace it anyway.\n"
    )
    rows = versions(RegistrySettings.from_env())
    assert [(r.version, r.aliases, r.task) for r in rows] == [
        ("1", ["champion"], "classification"),
        ("2", ["challenger"], "regression"),
    ]
    diabetes = hashlib.sha256((tmp_path / "data" / "diabetes.csv").read_bytes()).hexdigest()
    assert rows[1].dataset_sha256 == diabetes
    assert set(rows[1].metrics) == {"rmse", "mae", "r2"}

    assert mlship(["models"]) == 0
    listing = capsys.readouterr().out
    assert f"      2  challenger            regression      {diabetes[:12]}  " in listing
    assert "rmse=" in listing

    assert mlship(["promote", "2", "--force"]) == 0
    assert "mlship@champion -> version 2 (was version 1)" in capsys.readouterr().out
    # and the other way round: a classifier is not compared with the regressor champion
    assert mlship(["train"]) == 0
    assert (
        "champion v2 is a regression model and this is a classification model: not compared"
        in capsys.readouterr().out
    )


def test_each_name_has_its_own_champion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _repo_params(tmp_path)
    assert mlship(["train"]) == 0
    assert mlship(["promote", "1"]) == 0
    capsys.readouterr()
    assert mlship(["train", *REGRESSION, "--set", "name=diabetes"]) == 0
    out = capsys.readouterr().out
    assert "no champion registered yet: nothing to compare with" in out
    assert "registry  diabetes version 1" in out
    own = tmp_path / "diabetes.yaml"
    own.write_text((tmp_path / "params.yaml").read_text().replace("name: mlship", "name: diabetes"))
    assert mlship(["promote", "1", "--params", str(own)]) == 0
    assert "diabetes@champion -> version 1" in capsys.readouterr().out
    assert mlship(["models", "--params", str(own)]) == 0
    assert "      1  challenger,champion   regression" in capsys.readouterr().out
    champion = fetch_bundle("models:/mlship@champion", tmp_path / "fetched")
    assert load_bundle(champion).manifest.task == "classification"


def test_champion_without_task_tag_falls_back_to_its_run(
    write_params: WriteParams, tmp_path: Path
) -> None:
    _train(write_params, tmp_path, "one")
    settings = RegistrySettings.from_env()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.delete_model_version_tag("mlship", "1", "mlship.task")  # as registered before the tag
    client.set_registered_model_alias("mlship", "champion", "1")
    champion = aliased(settings)
    assert champion is not None
    assert champion.task == "classification"
    assert champion.dataset_sha256 == load_bundle(tmp_path / "one").manifest.dataset_sha256
