"""The bundle contract: round trip, checksums, archive layout."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from core.bundle import ARCHIVE_NAME, BundleError, load_bundle
from core.model import load_model


def test_bundle_round_trip_predictions_equal(logistic_bundle: Path) -> None:
    bundle = load_bundle(logistic_bundle)
    X = np.asarray(bundle.golden.inputs, dtype=np.float64)
    assert bundle.model.predict(X).tolist() == bundle.golden.predictions
    model = load_model(logistic_bundle)
    assert model.predict(X).labels.tolist() == bundle.golden.predictions


def test_bundle_archive_has_files_at_root(logistic_bundle: Path) -> None:
    with tarfile.open(logistic_bundle / ARCHIVE_NAME) as tar:
        names = sorted(tar.getnames())
    assert names == ["golden.json", "manifest.json", "model.skops"]
    assert load_bundle(logistic_bundle / ARCHIVE_NAME).manifest.version == "test-logistic-0"


def test_bundle_tampered_model_refused(logistic_bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    with (copy / "model.skops").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.skops does not match its checksum"):
        load_bundle(copy)


def test_bundle_missing_file_refused(logistic_bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    (copy / "golden.json").unlink()
    with pytest.raises(BundleError, match=r"golden\.json is listed in the manifest but missing"):
        load_bundle(copy)


def test_bundle_not_a_bundle_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="No model bundle at"):
        load_bundle(tmp_path / "nope")
