"""`dvc repro` rebuilds the model from the committed dvc.yaml and params.yaml (in a copy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.bundle import load_bundle
from tests.pipelines.conftest import REPO


def _dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_dvc_repro_reproduces_the_model(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    for package in ("core", "pipelines"):
        shutil.copytree(
            REPO / package, work / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    # The registry and validation have their own tests; DVC only tracks files, so the copy
    # leaves MLflow and Great Expectations out (their imports dominate a stage's run time).
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["registry"]["enabled"] = False
    params["data"]["expectations"] = None
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(REPO / ".dvc", work / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    # the committed config is for a git repository; this copy is not one
    _dvc(work, "config", "core.no_scm", "true")

    out = _dvc(work, "repro")
    assert "Running stage 'prepare'" in out
    assert "Running stage 'train'" in out
    assert "gate      passed" in out
    bundle = load_bundle(work / "models" / "latest")
    metrics = json.loads((work / "models" / "metrics.json").read_text())
    assert metrics == bundle.manifest.metrics
    lock = (work / "dvc.lock").read_text()
    assert "data/breast_cancer.csv" in lock
    assert "models/latest" in lock

    # nothing changed: nothing re-runs
    assert "Running stage" not in _dvc(work, "repro")

    # the data and the model go to the default local remote and come back byte for byte
    _dvc(work, "push")
    assert (work / "dvc-remote").is_dir()
    data_before = (work / "data" / "breast_cancer.csv").read_bytes()
    shutil.rmtree(work / "data")
    shutil.rmtree(work / "models" / "latest")
    shutil.rmtree(work / ".dvc" / "cache")
    _dvc(work, "pull")
    assert (work / "data" / "breast_cancer.csv").read_bytes() == data_before
    assert load_bundle(work / "models" / "latest").manifest.version == bundle.manifest.version

    # forcing a rebuild from scratch gives the same model (same seed, same data)
    rebuilt_out = _dvc(work, "repro", "--force", "train")
    assert "Running stage 'train'" in rebuilt_out
    rebuilt = load_bundle(work / "models" / "latest")
    assert rebuilt.manifest.dataset_sha256 == bundle.manifest.dataset_sha256
    assert rebuilt.manifest.metrics == bundle.manifest.metrics
    assert rebuilt.golden == bundle.golden
    assert rebuilt.manifest.version != bundle.manifest.version  # a new, timestamped build


def test_committed_lock_records_the_current_code_and_params() -> None:
    # A stale dvc.lock makes `dvc status` on a fresh clone report changed code, and `dvc repro`
    # re-run stages nobody changed. DVC 3 records a file dependency as the plain MD5 of its
    # bytes (https://dvc.org/doc/user-guide/project-structure/dvcyaml-files#dvclock-file).
    import hashlib

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    locked = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stale = []
    for name, stage in stages.items():
        recorded = {d["path"]: d.get("md5") for d in locked[name]["deps"]}
        for path in stage["deps"]:
            if (REPO / path).is_file() and not path.startswith("data/"):  # data: DVC's own
                digest = hashlib.md5((REPO / path).read_bytes()).hexdigest()  # noqa: S324
                if recorded.get(path) != digest:
                    stale.append(path)
        for key in stage.get("params", []):
            value: object = params
            for part in key.split("."):
                value = value[part]  # type: ignore[index]
            if locked[name]["params"]["params.yaml"].get(key) != value:
                stale.append(f"params.yaml:{key}")
    assert stale == [], f"dvc.lock is stale for {stale}: run `dvc repro` and commit dvc.lock"
