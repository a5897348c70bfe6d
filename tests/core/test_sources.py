"""``local_bundle``: a bundle directory for the length of a block, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.bundle import ARCHIVE_NAME, read_manifest
from core.errors import ModelLoadError
from core.s3 import s3_client
from core.sources import local_bundle


def test_local_bundle_extracts_an_archive_and_removes_it_after(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    with local_bundle(str(logistic_bundle / ARCHIVE_NAME), tmp_path) as bundle:
        assert bundle.is_dir()
        assert read_manifest(bundle).version == "test-logistic-0"

    assert list(tmp_path.iterdir()) == []


def test_local_bundle_removes_the_extraction_when_the_block_fails(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError), local_bundle(str(logistic_bundle / ARCHIVE_NAME), tmp_path):
        raise RuntimeError("refused after extraction")

    assert list(tmp_path.iterdir()) == []


def test_local_bundle_refuses_an_unreadable_archive_and_leaves_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "in" / ARCHIVE_NAME
    broken.parent.mkdir()
    broken.write_bytes(b"not a gzip file")
    cache = tmp_path / "cache"

    with (
        pytest.raises(ModelLoadError, match=rf"^Cannot load MLSHIP_MODEL_URI={broken}: .*not a"),
        local_bundle(str(broken), cache),
    ):
        pass

    assert list(cache.iterdir()) == []


def test_local_bundle_uses_a_directory_in_place_and_keeps_it(logistic_bundle: Path) -> None:
    with local_bundle(str(logistic_bundle)) as bundle:
        assert bundle == logistic_bundle

    assert (logistic_bundle / "manifest.json").is_file()


def test_local_bundle_from_s3_downloads_extracts_and_removes(
    aws: str, logistic_bundle: Path, tmp_path: Path
) -> None:
    s3_client().create_bucket(Bucket="mlship-test")
    s3_client().upload_file(str(logistic_bundle / ARCHIVE_NAME), "mlship-test", "m/model.tar.gz")

    with local_bundle("s3://mlship-test/m/", tmp_path) as bundle:
        assert read_manifest(bundle).version == "test-logistic-0"

    assert list(tmp_path.iterdir()) == []
